# lake: build, test, benchmark, lint, install.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
PREFIX ?= /usr/local
BIN := bin

.PHONY: all setup build demo test test-short bench lint fuzz install clean generate vm-test eval

all: build

setup:
	./deploy/setup-debian.sh

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The README's first command: laked serving the embedded LinnOS demo workload.
demo: setup build
	./$(BIN)/laked --demo

# The README's second command, and what CI runs. As root with the setup
# packages, the BPF and VM tests run too; elsewhere they skip with a reason.
test: setup
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...
	# features writes records with assembly that -race builds replace with
	# sync/atomic (features/publish.go): test the assembly too.
	$(GO) test -count=1 -timeout 5m ./features/

test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks whose figures are in docs/PERFORMANCE.md.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 ./shm/ ./lakelib/ ./policy/ ./linnos/ ./features/ ./liteflow/... ./laked/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Run every fuzz target for a short while (seeds live in testdata/fuzz).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime 10s $$pkg || exit 1; \
	  done; \
	done

generate:
	$(GO) generate ./...

# The block I/O evaluation (root): fio workloads on loop devices, traced
# with eBPF, LinnOS trained and replayed on the recorded latencies, and a
# live run through laked. Results in results/eval, see docs/EVALUATION.md.
eval: setup
	$(GO) run ./cmd/lake-eval -jobs eval/jobs -out results/eval

vm-test:
	$(GO) test -count=1 -v -run VM ./kernel/...

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/lake $(DESTDIR)/etc/systemd/system
	install -m 0755 $(BIN)/laked $(BIN)/lakectl $(DESTDIR)$(PREFIX)/bin/ 2>/dev/null || install -m 0755 $(BIN)/laked $(DESTDIR)$(PREFIX)/bin/
	[ -f $(DESTDIR)/etc/lake/laked.yaml ] || install -m 0644 deploy/laked.yaml $(DESTDIR)/etc/lake/laked.yaml
	install -m 0644 deploy/laked.service deploy/laked.socket deploy/laked-admin.socket $(DESTDIR)/etc/systemd/system/

clean:
	rm -rf $(BIN) kernel/build
