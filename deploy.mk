# Installation (included by the Makefile, after clients/*.mk): make install, make uninstall,
# the generated man pages and default config file, and make test-deploy.
#
#   make && sudo make install                    # under /usr/local, config in /etc/elbod
#   make install DESTDIR=/tmp/stage PREFIX=/usr  # staged, as a package build would
#
# What goes where (PREFIX defaults to /usr/local; DESTDIR is prepended to every path):
#   $(PREFIX)/bin/elbod, $(PREFIX)/bin/elboctl
#   $(PREFIX)/share/man/man1/elbod.1, elboctl.1   generated from --help (scripts/mkman.sh)
#   $(PREFIX)/lib/elbod/python/                   elbod_client.py and example_pendulum.py
#   $(PREFIX)/lib/elbod/examples/                 robot_pendulum, robot_cartpole (C robots)
#   $(PREFIX)/share/elbod/elbod.conf              the default config, for reference
#   $(PREFIX)/lib/systemd/system/elbod.service    systemd/elbod.service, paths set to PREFIX
#   /etc/elbod/elbod.conf (SYSCONFDIR)            the default config, only if none is there

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
ELBOD_LIB_DIR := $(PREFIX)/lib/elbod
ELBOD_SHARE_DIR := $(PREFIX)/share/elbod
INSTALL ?= install

DEPLOY_OUT := $(BUILD)/deploy
MAN_PAGES := $(DEPLOY_OUT)/elbod.1 $(DEPLOY_OUT)/elboctl.1
DEFAULT_CONF := $(DEPLOY_OUT)/elbod.conf
PY_CLIENT_FILES := clients/python/elbod_client.py clients/python/example_pendulum.py

.PHONY: install uninstall test-deploy

# Generated at build time from the binaries' --help, so they always match them.
all: $(MAN_PAGES) $(DEFAULT_CONF)

$(DEPLOY_OUT)/elbod.1: $(ELBOD_BIN) scripts/mkman.sh
	@mkdir -p $(dir $@)
	sh scripts/mkman.sh $(ELBOD_BIN) "$$($(ELBOD_BIN) --version | cut -d' ' -f2)" \
		"a daemon that hosts model-based reinforcement-learning agents" \
		"elboctl(1), systemctl(1), journalctl(1)" \
		"$(SYSCONFDIR)/elbod/elbod.conf: the config file the systemd unit names" \
		"/var/lib/elbod: the store (data_dir) of the systemd service" > $@.tmp
	mv $@.tmp $@

$(DEPLOY_OUT)/elboctl.1: $(ELBOCTL_BIN) $(ELBOD_BIN) scripts/mkman.sh
	@mkdir -p $(dir $@)
	sh scripts/mkman.sh $(ELBOCTL_BIN) "$$($(ELBOD_BIN) --version | cut -d' ' -f2)" \
		"the command-line client of elbod" "elbod(1)" > $@.tmp
	mv $@.tmp $@

$(DEFAULT_CONF): $(ELBOD_BIN) scripts/mkconf.sh
	@mkdir -p $(dir $@)
	sh scripts/mkconf.sh $(ELBOD_BIN) data_dir=/var/lib/elbod > $@.tmp
	mv $@.tmp $@

# The config file in SYSCONFDIR is the administrator's: installed when missing, never replaced
# (the current default is always in $(ELBOD_SHARE_DIR)/elbod.conf to compare with).
install: $(ELBOD_BIN) $(ELBOCTL_BIN) $(ROBOT_BINS) $(MAN_PAGES) $(DEFAULT_CONF)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(ELBOD_LIB_DIR)/python \
		$(DESTDIR)$(ELBOD_LIB_DIR)/examples $(DESTDIR)$(ELBOD_SHARE_DIR) \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SYSCONFDIR)/elbod
	$(INSTALL) -m 0755 $(ELBOD_BIN) $(ELBOCTL_BIN) $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 0644 $(PY_CLIENT_FILES) $(DESTDIR)$(ELBOD_LIB_DIR)/python
	$(INSTALL) -m 0755 $(ROBOT_BINS) $(DESTDIR)$(ELBOD_LIB_DIR)/examples
	$(INSTALL) -m 0644 $(DEFAULT_CONF) $(DESTDIR)$(ELBOD_SHARE_DIR)/elbod.conf
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/elbod/|$(SYSCONFDIR)/elbod/|g' \
		systemd/elbod.service > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/elbod.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/elbod.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/elbod/elbod.conf ]; then \
		echo "install: kept $(DESTDIR)$(SYSCONFDIR)/elbod/elbod.conf (the new default is $(DESTDIR)$(ELBOD_SHARE_DIR)/elbod.conf)"; \
	else \
		echo "$(INSTALL) -m 0644 $(DEFAULT_CONF) $(DESTDIR)$(SYSCONFDIR)/elbod/elbod.conf"; \
		$(INSTALL) -m 0644 $(DEFAULT_CONF) $(DESTDIR)$(SYSCONFDIR)/elbod/elbod.conf; \
	fi

# Removes what install put in place, file by file. The config file goes only if it is unchanged
# from the default; the store (/var/lib/elbod) is never touched.
uninstall:
	@conf=$(DESTDIR)$(SYSCONFDIR)/elbod/elbod.conf; \
	if [ -e "$$conf" ]; then \
		if cmp -s "$$conf" $(DESTDIR)$(ELBOD_SHARE_DIR)/elbod.conf; then \
			echo "rm -f $$conf"; rm -f "$$conf"; rmdir $(DESTDIR)$(SYSCONFDIR)/elbod 2>/dev/null || true; \
		else \
			echo "uninstall: kept $$conf (changed from the default)"; \
		fi; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/elbod $(DESTDIR)$(BINDIR)/elboctl \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN_PAGES))) \
		$(addprefix $(DESTDIR)$(ELBOD_LIB_DIR)/python/,$(notdir $(PY_CLIENT_FILES))) \
		$(addprefix $(DESTDIR)$(ELBOD_LIB_DIR)/examples/,$(notdir $(ROBOT_BINS))) \
		$(DESTDIR)$(ELBOD_SHARE_DIR)/elbod.conf $(DESTDIR)$(SYSTEMD_UNIT_DIR)/elbod.service
	rm -rf $(DESTDIR)$(ELBOD_LIB_DIR)/python/__pycache__
	@for d in $(DESTDIR)$(ELBOD_LIB_DIR)/python $(DESTDIR)$(ELBOD_LIB_DIR)/examples \
		$(DESTDIR)$(ELBOD_LIB_DIR) $(DESTDIR)$(ELBOD_SHARE_DIR); do \
		rmdir "$$d" 2>/dev/null || true; \
	done

# Installs into a temporary DESTDIR, runs the installed daemon with the installed config, and
# checks the systemd unit (tests/test_deploy.sh).
test-deploy:
	MAKE="$(MAKE)" sh tests/test_deploy.sh
