# Two commands for a newcomer (as root on Debian 12): `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
HOSTS ?= 3
SUITE ?= bookworm
GROUPS ?=
FLEET ?= demo
APT_PACKAGES := debootstrap systemd-container bubblewrap zstd openssh-client iproute2 curl python3-venv postgresql-client apt-cacher-ng pebble restic

.PHONY: demo test test-fast bench deps lock fleet-up fleet-down fleet-poweroff fleet-poweron fleet-replace deploy dry answers clean

## Set up everything, boot the local fleet, deploy, print each host's HTTP answer.
demo: deps
	$(PY) -m fleet.hosts up --name $(FLEET) --hosts $(HOSTS) --reuse
	DJDEPLOY_FLEET=$(FLEET) .venv/bin/pyinfra -y inventory.py deploy.py
	DJDEPLOY_FLEET=$(FLEET) $(PY) -m fleet.answers inventory.py /

## All tests: real deploys to test fleets of their own, and fast ones; test files side by side
## on $(WORKERS) workers, the longest first, then the one test that must run alone (tests/conftest.py).
WORKERS ?= 3
test: deps
	.venv/bin/pytest -q --durations=20 -n $(WORKERS) --dist loadfile --no-loadscope-reorder -m "not alone" tests
	.venv/bin/pytest -q -m alone tests

## The fast layers only (pure functions, facts and operations, plans with @fake): no fleet, no root, about a minute.
test-fast: .venv/.installed
	.venv/bin/pytest -q -m "not fleet and not index" tests

## Deploy timings against the floor and an Ansible playbook: first deploy, no-op, code-only (tables, CSV).
bench: deps bench/.ansible-venv/bin/ansible-playbook
	.venv/bin/python bench/run.py

# Ansible for make bench's baseline, in a virtualenv of its own (its dependencies are not ours).
bench/.ansible-venv/bin/ansible-playbook:
	python3 -m venv bench/.ansible-venv
	bench/.ansible-venv/bin/pip install --quiet --disable-pip-version-check 'ansible-core==2.17.14'

## apt packages for the local fleet, and the project's virtualenv in .venv.
# Packages install with their daemons held back (a policy-rc.d exiting 101, made for the
# install unless the machine has one): Debian's apt-cacher-ng would otherwise serve
# 0.0.0.0:3142, now and (enabled) at every boot. The fleet runs its own, on its side only.
deps: .venv/.installed
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing $$missing"; policy=; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; \
		fi; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		rc=$$?; [ -z "$$policy" ] || rm -f $$policy; [ $$rc -eq 0 ] || exit $$rc; \
	fi; \
	if [ -e /etc/init.d/apt-cacher-ng ]; then \
		deb-systemd-helper disable apt-cacher-ng.service >/dev/null 2>&1 || true; \
		update-rc.d apt-cacher-ng disable >/dev/null 2>&1 || true; \
		[ ! -e /run/apt-cacher-ng/pid ] || start-stop-daemon --stop --quiet --retry 10 \
			--pidfile /run/apt-cacher-ng/pid --exec /usr/sbin/apt-cacher-ng || true; \
	fi

# The controller's dependencies and the test tools, at the versions constraints.txt locks.
.venv/.installed: pyproject.toml constraints.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

## constraints.txt again, from a new virtualenv with the newest versions pyproject.toml allows.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[test]' 'matplotlib>=3.8,<4'
	{ echo "# The controller's whole dependency set, as \`make deps\` installs it (\`make lock\` renews it)."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^djdeploy'; } > constraints.txt
	rm -rf .lock-venv

fleet-up: deps
	$(PY) -m fleet.hosts up --name $(FLEET) --hosts $(HOSTS) --suite $(SUITE) $(if $(GROUPS),--groups $(GROUPS))

fleet-down:
	@if [ -x $(PY) ]; then $(PY) -m fleet.hosts down --name $(FLEET); \
	else python3 -m fleet.hosts down --name $(FLEET); fi

## A host of a fleet loses its power, gets it back, or is replaced by a fresh one (HOST=1, 2, ...).
fleet-poweroff fleet-poweron fleet-replace:
	$(PY) -m fleet.hosts $(@:fleet-%=%) --name $(FLEET) --host $(HOST)

deploy: deps
	DJDEPLOY_FLEET=$(FLEET) .venv/bin/pyinfra -y inventory.py deploy.py

dry: deps
	DJDEPLOY_FLEET=$(FLEET) .venv/bin/pyinfra inventory.py deploy.py --dry --diff

answers:
	DJDEPLOY_FLEET=$(FLEET) $(PY) -m fleet.answers inventory.py /

clean: fleet-down
	rm -rf .venv
