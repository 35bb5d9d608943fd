"""What moto's AWS lacks that the tests need, added to moto as AWS does it."""
