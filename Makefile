# The index of common commands. Each target is one command you can also run by hand.
.PHONY: run test lint fmt ci

run:  ## Run casebridge on its embedded default (SQLite under ./data)
	cargo run --release -- serve

test: ## Run every test on SQLite and PostgreSQL (CASEBRIDGE_TEST_POSTGRES_URL)
	cargo test --workspace

lint: ## What CI checks besides the tests
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

ci:   ## Exactly what CI runs
	bash .ci/run
