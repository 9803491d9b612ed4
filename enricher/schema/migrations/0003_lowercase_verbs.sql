-- One verb vocabulary: every record and row uses the lower-case Kubernetes verbs that
-- kube-apiserver's RequestInfo and audit events use (get, list, watch, create, update, patch,
-- delete, deletecollection), and connect for admission's CONNECT. Admission decisions and
-- approval requests were recorded with the admission operation (CREATE, UPDATE, DELETE,
-- CONNECT); lower-case them so that they join with audit events and gateway requests. A stored
-- UPDATE becomes update: which of those were patches is not recorded.
ALTER TABLE {{.DB}}.gateway_decisions UPDATE verb = lower(verb) WHERE verb != lower(verb)
    SETTINGS mutations_sync = 2;
ALTER TABLE {{.DB}}.approvals UPDATE verb = lower(verb) WHERE verb != lower(verb)
    SETTINGS mutations_sync = 2;
ALTER TABLE {{.DB}}.gateway_requests UPDATE verb = lower(verb) WHERE verb != lower(verb)
    SETTINGS mutations_sync = 2;
