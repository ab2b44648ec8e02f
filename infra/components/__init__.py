"""Local, container-free runners for the pipeline's infrastructure: Kafka, PostgreSQL,
Prometheus and Spark, shared by the tests and the local stack."""
