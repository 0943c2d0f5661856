"""Data quality: the great-expectations gate every incoming file passes before it loads."""
