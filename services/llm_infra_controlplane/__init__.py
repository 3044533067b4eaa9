"""llm-infra control plane: the FastAPI app behind `llm-infra up` and the in-cluster Deployment."""
