# The AWS bundle's build, run by `sam build` (template.yaml: `BuildMethod: makefile`): SAM runs
# `make build-<LogicalId>` once per function, here in the repository root, with ARTIFACTS_DIR
# set to that function's build folder. The seven functions deploy one binary (`retl-functions`;
# each function's RETL_FUNCTION names its handler), so the first target compiles it and the
# other six find cargo's build up to date and only copy it.

CARGO ?= cargo
BINARY := retl-functions
LAMBDA_DIR := $(CURDIR)/target/lambda
FUNCTIONS := TriggerFunction ExtractFunction PlanFunction ApprovalFunction ApplyFunction FinalizeFunction DbtWebhookFunction

.PHONY: lambda $(FUNCTIONS:%=build-%)

# An optimized build for Lambda's Graviton (aarch64-unknown-linux-gnu), cross-linked by Zig,
# with the `lambda` profile of Cargo.toml: with `--release`, cargo-lambda would fill in each
# release setting Cargo.toml leaves out with its own (thin LTO, one codegen unit), which are
# slow to build. The CPU is the oldest Lambda Graviton's, as cargo-lambda sets it.
# `--package` keeps the build to the functions' own dependency graph: without it, cargo would
# unify the features every workspace member asks for (the CLI's SSO credentials, the fakes'
# HTTP server) into this build.
# Its own target directory: the host build's (target/) stays free for cargo commands that run
# meanwhile (the test command builds this while the tests run), and the two share no artefact.
lambda:
	CARGO_TARGET_DIR=$(CURDIR)/target/arm64 $(CARGO) lambda build --profile lambda --arm64 --package $(BINARY) --bin $(BINARY) --lambda-dir $(LAMBDA_DIR) \
	  --config 'target.aarch64-unknown-linux-gnu.rustflags=["-C", "target-cpu=neoverse-n1"]'

$(FUNCTIONS:%=build-%): lambda
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: sam build sets it" >&2; exit 1; }
	mkdir -p "$(ARTIFACTS_DIR)"
	cp "$(LAMBDA_DIR)/$(BINARY)/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"
