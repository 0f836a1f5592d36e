-- Basic-auth users and permissions get their own database beside the tracking store.
CREATE DATABASE mlflow_auth OWNER mlflow;
