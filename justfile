# Everyday commands. Each is a thin wrapper over scripts/ so nothing here is
# needed to build, run or test scimgate.

# List the recipes.
default:
    @just --list

# Run the whole test suite, exactly as CI does.
test:
    scripts/test

# Run the tests without fuzzing (quick loop).
quick:
    SCIMGATE_FUZZ_SECONDS=0 scripts/test

# Fuzz every target for SECONDS each (default 10 minutes).
fuzz seconds="600":
    scripts/fuzz {{seconds}}

# Run the criterion benchmarks of the protocol core.
bench:
    cargo bench -p scim

# Format the code.
fmt:
    cargo fmt --all

# Lint as CI does.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the checked-in reference documents (docs/reference/).
bless:
    SCIMGATE_BLESS=1 cargo test -p scim --test discovery
