"""End-to-end tests of meterd through real AWS clients (boto3, AWS CLI v1, AWS CLI v2)."""
