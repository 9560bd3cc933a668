-- A webhook's version: bumped by every change to the webhook or its signing secrets, in the
-- change's transaction. The delivery handler caches a webhook with its decrypted secrets and
-- reloads the entry when the version it reads with the delivery differs (issue 11).
ALTER TABLE webhooks ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
