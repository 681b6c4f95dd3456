"""Deploy tooling: the pinned requirements file the platforms' buildpacks install from."""
