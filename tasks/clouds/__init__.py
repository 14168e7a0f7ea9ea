"""Client factories from credential blocks (AWS, GCP, Kubernetes) and the Kubernetes error
types; Azure clients are methods of ``blocks.azure.AzureCredentials``."""
