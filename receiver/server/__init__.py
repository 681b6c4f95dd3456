"""Server plumbing: the HTTP protocol, uvicorn options, the heap, log redaction, serverless
mode."""
