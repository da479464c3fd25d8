# peersnap top-level build.
#
#   make            build dm-peersnap.ko (W=1) and the userspace programs
#   make deps       install every Debian package the project needs (idempotent)
#   make check      unit tests (ASan+UBSan) and VM tests on Debian's kernel,
#                   then every VM test again on the debug kernel (built
#                   beside the Debian lane if not cached); summary line at
#                   the end. LANES=debian make check: the first lane only
#   make debug-kernel   the debug lane's kernel (KASAN, lockdep, kmemleak, UBSAN),
#                   cached in /var/cache/peersnap: built once per machine
#   make debug-modules  dm-peersnap.ko and the test-only broken module, built
#                   against the debug kernel into build/debug/
#   make demo       the lazy-read demo inside the VM
#   make bench      fio benchmarks inside the VM (docs/benchmarks.md)
#   make style      checkpatch --strict and clang-format on kmod/ and uapi/
#   make vm-shell   interactive shell in the test VM

KVER ?= $(shell scripts/kver 2>/dev/null)
KDIR ?= /lib/modules/$(KVER)/build
export KVER KDIR

.PHONY: all module agent tools unit deps check demo bench style vm-shell clean \
	debug-kernel debug-modules

all: module agent tools

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

agent:
	$(MAKE) -C agent

# Test tools the VM tests run (tests/tools/*.c), one program per file.
TOOLS := $(patsubst tests/tools/%.c,build/tools/%,$(wildcard tests/tools/*.c))

tools: $(TOOLS)

build/tools/%: tests/tools/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@.tmp $< && mv $@.tmp $@

unit:
	$(MAKE) -C tests/unit

deps:
	scripts/deps

debug-kernel:
	scripts/debug-kernel >/dev/null

debug-modules:
	scripts/debug-modules

check: deps
	$(MAKE) all
	scripts/check

demo: deps
	$(MAKE) all
	scripts/vm run tests/demo.sh

bench: deps
	$(MAKE) all
	scripts/bench

style:
	scripts/style

vm-shell: all
	scripts/vm shell

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null || true
	$(MAKE) -C agent clean
	$(MAKE) -C tests/unit clean
	rm -rf build
