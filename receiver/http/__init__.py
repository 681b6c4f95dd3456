"""What every route family shares: route declarations with their OpenAPI operation,
auth guards, query parameters, response shapes, problem+json and JSON responses."""
