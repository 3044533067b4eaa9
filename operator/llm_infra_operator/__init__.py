"""llm-infra operator: the kopf app that reconciles the four kinds (docs/operator.md)."""
