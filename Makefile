# lake: build, test, benchmark, lint, install.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
PREFIX ?= /usr/local
BIN := bin

.PHONY: all setup build demo test test-short bench lint fuzz install clean generate vm-test eval cuda-env cuda-check gpu-check-build gpu-check

all: build

setup:
	./deploy/setup-debian.sh

# The default build is CPU-only and static (no cgo). NVML (GPU load for
# the policy) needs cgo; it comes with the cuda variant, which is the
# only build with a GPU backend (make cuda-check, make gpu-check-build).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

# The README's first command: laked serving the embedded LinnOS demo workload.
demo: setup build
	./$(BIN)/laked --demo

# The README's second command, and what CI runs. As root with the setup
# packages, the BPF and VM tests run too; elsewhere they skip with a reason.
test: setup
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m $$($(GO) list ./... | grep -v '/kernel/vmtest$$')
	# The VM test boots qemu under TCG and times the kernel's LiteFlow
	# recovery against the wall clock: alone, not beside the other
	# packages' tests (under their load it once saw 3 userspace-mode
	# batches after the change instead of 12-16, and failed).
	$(GO) test -race -count=1 -timeout 15m ./kernel/vmtest/
	# features writes records with assembly that -race builds replace with
	# sync/atomic (features/publish.go): test the assembly too.
	$(GO) test -count=1 -timeout 5m ./features/
	# The attack suite asserts laked's RSS under its budget only without
	# -race (which multiplies memory): run it once more without.
	$(GO) test -count=1 -timeout 5m -run '^TestAttacksOnLakedProcess$$' ./cmd/laked/
	# Allocation counts are only meaningful without -race.
	$(GO) test -count=1 -timeout 5m -run '^TestSteadyStateAllocatesNothing$$' ./lakelib/
	$(MAKE) cuda-check

test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks whose figures are in docs/PERFORMANCE.md.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 ./shm/ ./lakelib/ ./policy/ ./linnos/ ./features/ ./liteflow/... ./laked/... ./vecmath/

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
	sed 's|/usr/local/bin/laked|$(PREFIX)/bin/laked|' deploy/laked.service >$(DESTDIR)/etc/systemd/system/laked.service
	install -m 0644 deploy/laked.socket deploy/laked-admin.socket $(DESTDIR)/etc/systemd/system/
	@if [ -e $(KDIR)/Makefile ]; then $(MAKE) --no-print-directory install-modules; else \
	  echo "install: no kernel headers at $(KDIR), so no kernel modules installed:" \
	       "apt-get install linux-headers-$(KVER), then make install-modules (or make install-dkms)" >&2; fi

clean:
	rm -rf $(BIN) kernel/build build

# The cuda build variant (laked/backend/cuda), without a GPU: CUDA 12
# headers and ptxas from NVIDIA's pip wheels and a generated link-time
# libcuda.so stub, all in the ignored .whl/ (deploy/cuda-env.sh).
CUDA_ENV := CGO_ENABLED=1 CGO_CFLAGS="-I$(CURDIR)/.whl/cuda/include" CGO_LDFLAGS="-L$(CURDIR)/.whl/stub"
CUDA_PKGS := ./laked/... ./cmd/laked/ ./policy/
# Test binaries run against the fake driver (.whl/fake/libcuda.so.1,
# tests only; laked ignores the variable).
FAKE_CUDA := LAKE_CUDA_FAKE_DRIVER=1 LD_LIBRARY_PATH=$(CURDIR)/.whl/fake
cuda-env:
	./deploy/cuda-env.sh

# What CI checks of the cuda variant: it vets and builds, the committed
# PTX assembles for sm_90, and its GPU-less tests pass against the stub
# (the GPU tests skip there with the reason).
cuda-check: cuda-env
	$(CUDA_ENV) $(GO) vet -tags cuda $(CUDA_PKGS)
	$(CUDA_ENV) $(GO) build -tags cuda -o /dev/null ./cmd/laked
	.whl/cuda/bin/ptxas -arch=sm_90 laked/backend/cuda/ptx/lake.ptx -o /dev/null
	# The tag-free tests (OnHost included) already ran in test; here only
	# what the tag adds: the cuda package's own tests and laked's GPU ones.
	$(CUDA_ENV) LD_LIBRARY_PATH=$(CURDIR)/.whl/stub $(GO) test -race -count=1 -tags cuda -skip OnHost ./laked/backend/cuda/
	$(CUDA_ENV) LD_LIBRARY_PATH=$(CURDIR)/.whl/stub $(GO) test -race -count=1 -tags cuda -run 'GPU|LoadSources' ./cmd/laked/
	# The GPU tests again, against the fake CUDA driver (host memory, the
	# host build of lake.cu; laked/backend/cuda/fake): the backend's and
	# laked's GPU paths run, not the GPU (see the package doc).
	laked/backend/cuda/fake/gen.sh .whl/fake
	$(CUDA_ENV) $(FAKE_CUDA) $(GO) test -race -count=1 -tags cuda -run 'GPU|Fake' ./laked/backend/cuda/
	$(CUDA_ENV) $(FAKE_CUDA) $(GO) test -race -count=1 -tags cuda -run 'GPU' ./cmd/laked/

# Build the GPU check (cuda-tagged test binaries and the script) into
# bin/gpu-check; deploy/gpu-check.sh runs them on a GPU machine with no
# Go (see docs/PERFORMANCE.md, "GPU").
gpu-check-build: cuda-env
	mkdir -p $(BIN)/gpu-check
	$(CUDA_ENV) $(GO) test -c -tags cuda -ldflags=-s -o $(BIN)/gpu-check/cuda.test ./laked/backend/cuda/
	$(CUDA_ENV) $(GO) test -c -race -tags cuda -ldflags=-s -o $(BIN)/gpu-check/cuda-race.test ./laked/backend/cuda/
	$(CUDA_ENV) $(GO) test -c -tags cuda -ldflags=-s -o $(BIN)/gpu-check/policy.test ./policy/
	$(CUDA_ENV) $(GO) test -c -tags cuda -ldflags=-s -o $(BIN)/gpu-check/laked-cuda.test ./cmd/laked/

# On the GPU machine (after gpu-check-build here): results in $$OUT.
gpu-check:
	./deploy/gpu-check.sh $(BIN)/gpu-check

# --- Kernel modules, DKMS and the Debian package ---
# The module sources are staged (deploy/stage-kernel-src.sh) in
# $(KSRC) and built there, so that no objects land in the checkout; the
# staged tree is also what DKMS and the package get. Every module the
# top-level kernel/Kbuild builds is installed (kernel/tools/list-modules.sh).
LAKE_VERSION ?= 0.1.0
KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
KSRC ?= build/kernel-src

.PHONY: kernel-src modules install-modules modules-install install-dkms uninstall-dkms

kernel-src:
	./deploy/stage-kernel-src.sh $(KSRC) $(LAKE_VERSION)

modules: kernel-src
	$(MAKE) -C $(KDIR) M=$(abspath $(KSRC))/kernel modules

# Into /lib/modules/$(KVER)/extra like any out-of-tree module, then depmod
# (with DESTDIR, against that root).
install-modules: modules
	$(MAKE) --no-print-directory modules-install

# The install step alone, for modules already built in $(KSRC) (the VM
# test installs the modules it built into its initramfs this way).
modules-install:
	$(MAKE) -C $(KDIR) M=$(abspath $(KSRC))/kernel INSTALL_MOD_PATH=$(abspath $(DESTDIR)) INSTALL_MOD_DIR=extra modules_install
	install -D -m 0644 deploy/modules-load.d/lake.conf $(DESTDIR)/etc/modules-load.d/lake.conf
	depmod $(if $(DESTDIR),-b $(abspath $(DESTDIR))) $(KVER)

# The sources in /usr/src/lake-$(LAKE_VERSION) for DKMS, which rebuilds the
# modules for every kernel installed later (an alternative to
# install-modules; use one). Without DESTDIR, also dkms install.
install-dkms: kernel-src
	-[ -n "$(DESTDIR)" ] || dkms remove -m lake -v $(LAKE_VERSION) --all >/dev/null 2>&1
	rm -rf $(DESTDIR)/usr/src/lake-$(LAKE_VERSION)
	install -d $(DESTDIR)/usr/src
	cp -r $(KSRC) $(DESTDIR)/usr/src/lake-$(LAKE_VERSION)
	install -D -m 0644 deploy/modules-load.d/lake.conf $(DESTDIR)/etc/modules-load.d/lake.conf
	[ -n "$(DESTDIR)" ] || dkms install -m lake -v $(LAKE_VERSION) -k $(KVER)

uninstall-dkms:
	-dkms remove -m lake -v $(LAKE_VERSION) --all
	rm -rf /usr/src/lake-$(LAKE_VERSION) /etc/modules-load.d/lake.conf

# A Debian package of the whole thing (deploy/mkdeb.sh, dpkg-deb):
# laked and lakectl (static), the units, the config, and the module
# sources for DKMS. sudo apt install ./$(DEB)
DEB_BIN ?= build/deb-bin
DEB ?= build/lake_$(LAKE_VERSION)_$(shell dpkg --print-architecture 2>/dev/null || echo amd64).deb
.PHONY: deb
deb:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(LAKE_VERSION)" -o $(DEB_BIN)/ ./cmd/laked ./cmd/lakectl
	./deploy/mkdeb.sh $(DEB) $(LAKE_VERSION) $(DEB_BIN)
