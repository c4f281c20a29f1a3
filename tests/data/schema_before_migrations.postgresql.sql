-- The application database as the last release before migrations created it (postgresql): every
-- table of SQLModel.metadata.create_all, the columns and indexes added since their first release
-- included, and worker_policy, which later releases drop. No alembic_version table.

CREATE TABLE audit_log (
	id SERIAL NOT NULL,
	event_key VARCHAR NOT NULL,
	account_id VARCHAR NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	kind VARCHAR NOT NULL,
	detail VARCHAR NOT NULL,
	touchpoint INTEGER,
	template VARCHAR,
	provider VARCHAR,
	provider_message_id VARCHAR,
	outcome VARCHAR,
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_audit_log_account_id ON audit_log (account_id);

CREATE INDEX ix_audit_log_at ON audit_log (at);

CREATE UNIQUE INDEX ix_audit_log_event_key ON audit_log (event_key);

CREATE INDEX ix_audit_log_kind ON audit_log (kind);

CREATE TABLE inbound_sms (
	id SERIAL NOT NULL,
	provider VARCHAR NOT NULL,
	provider_message_id VARCHAR NOT NULL,
	phone_hash VARCHAR(64) NOT NULL,
	phone_encrypted VARCHAR NOT NULL,
	body_encrypted VARCHAR,
	body VARCHAR NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	matched_account_ids JSON NOT NULL,
	signalled_account_ids JSON NOT NULL,
	claimed_until INTEGER,
	routed_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	UNIQUE (provider, provider_message_id)
);

CREATE INDEX ix_inbound_sms_phone_hash ON inbound_sms (phone_hash);

CREATE INDEX ix_inbound_sms_provider_message_id ON inbound_sms (provider_message_id);

CREATE TABLE outbox (
	idempotency_key VARCHAR NOT NULL,
	account_id VARCHAR NOT NULL,
	touchpoint INTEGER NOT NULL,
	channel VARCHAR NOT NULL,
	template VARCHAR,
	status VARCHAR NOT NULL,
	detail VARCHAR,
	provider_message_id VARCHAR,
	attempts INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	completed_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (idempotency_key)
);

CREATE INDEX ix_outbox_account_id ON outbox (account_id);

CREATE TABLE payment_notice (
	reference VARCHAR NOT NULL,
	account_id VARCHAR NOT NULL,
	amount VARCHAR NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	claimed_until INTEGER,
	signalled_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (reference)
);

CREATE INDEX ix_payment_notice_account_id ON payment_notice (account_id);

CREATE TABLE phone_lookup (
	id SERIAL NOT NULL,
	phone_hash VARCHAR(64) NOT NULL,
	account_id VARCHAR NOT NULL,
	registered_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (phone_hash, account_id)
);

CREATE INDEX ix_phone_lookup_account_id ON phone_lookup (account_id);

CREATE INDEX ix_phone_lookup_phone_hash ON phone_lookup (phone_hash);

CREATE TABLE sms_delivery (
	provider_message_id VARCHAR NOT NULL,
	account_id VARCHAR NOT NULL,
	status VARCHAR NOT NULL,
	rank INTEGER NOT NULL,
	permanent BOOLEAN NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	undeliverable_signalled_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (provider_message_id)
);

CREATE INDEX ix_sms_delivery_account_id ON sms_delivery (account_id);

CREATE TABLE sms_opt_out (
	phone_hash VARCHAR(64) NOT NULL,
	phone_encrypted VARCHAR NOT NULL,
	account_id VARCHAR NOT NULL,
	opted_out_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (phone_hash)
);

CREATE TABLE webhook_signature (
	digest VARCHAR(64) NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (digest)
);

CREATE INDEX ix_webhook_signature_expires_at ON webhook_signature (expires_at);

CREATE TABLE worker_policy (
	fingerprint VARCHAR(16) NOT NULL,
	policies JSON NOT NULL,
	first_registered_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_registered_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (fingerprint)
);

CREATE INDEX ix_worker_policy_last_registered_at ON worker_policy (last_registered_at);
