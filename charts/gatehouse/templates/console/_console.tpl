{{/*
The approvers' console (`gatehouse console`: the web UI and the approvals API on one listener)
goes here: a Deployment, Service, PodDisruptionBudget, NetworkPolicy and certificate like the
proxy's, using the same helpers (gatehouse.tlsArgs, gatehouse.natsArgs with component "console"
and nats.credentialsSecrets.console, gatehouse.scheduling). values.schema.json keeps
console.enabled false until then.
*/}}
