# SPDX-License-Identifier: GPL-2.0
#
# The front door: each target is one `cargo xtask` command.

CHAPTER ?= 01-hello

.PHONY: hello run setup test book

# Everything from scratch (toolchain, kernel, guest), then chapter 01 checked
# in the guest.
hello:
	cargo xtask run 01-hello

# Any chapter: make run CHAPTER=01-hello
run:
	cargo xtask run $(CHAPTER)

setup:
	cargo xtask setup

# The harness's unit tests, every chapter in the guest, the negative tests.
test:
	cargo xtask test

book:
	cargo xtask book
