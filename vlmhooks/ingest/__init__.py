"""From raw bytes to a storable prediction: parsing, the contract, exact numbers, schema checks."""
