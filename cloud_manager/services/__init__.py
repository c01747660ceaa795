"""The Cloud Manager's business logic, one module per resource or workflow."""
