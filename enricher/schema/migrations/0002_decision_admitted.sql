-- Whether admission let a decided request through: a requireApproval decision is admitted when
-- a grant was used, and a decision that could not be recorded may have been refused.
ALTER TABLE {{.DB}}.gateway_decisions
    ADD COLUMN IF NOT EXISTS admitted Bool DEFAULT false CODEC(ZSTD(1)) AFTER dry_run;
