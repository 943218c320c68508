# The dashboard and the browser game (included by the Makefile).
#
# web/*.html, *.js, *.css are embedded in elbod: web/embed.sh turns them into a C table
# ($(BUILD)/web/web_assets.c, see api/webui.h) that goes into the server archive; api/api.c
# serves it at GET / and GET /ui/{file}.
#
# make test-browser   headless Chromium (Debian's chromium, driven by playwright-core from npm,
#                     installed into tests/browser/node_modules) against a real build/elbod

WEB_FILES := $(sort $(wildcard web/*.html web/*.js web/*.css))
WEB_ASSETS_C := $(BUILD)/web/web_assets.c
WEB_ASSETS_OBJ := $(BUILD)/web/web_assets.o

# `web` itself is a prerequisite so that removing a file regenerates the table.
$(WEB_ASSETS_C): web/embed.sh $(WEB_FILES) web
	@mkdir -p $(dir $@)
	sh web/embed.sh $@ $(WEB_FILES)

$(WEB_ASSETS_OBJ): $(WEB_ASSETS_C) api/webui.h
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The Makefile's archive rule archives $^: this adds the table to it.
$(SERVER_LIB): $(WEB_ASSETS_OBJ)

# playwright-core, at the version of tests/browser/package-lock.json (npm's own record of the
# install is the stamp). It never downloads a browser: the tests use /usr/bin/chromium.
BROWSER_NODE_STAMP := tests/browser/node_modules/.package-lock.json

$(BROWSER_NODE_STAMP): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "test-browser: needs node and npm"; exit 1; }
	cd tests/browser && npm ci --no-audit --no-fund
	@touch $@

.PHONY: test-browser

# The release build's elbod, whatever SANITIZER says (the browser is slow enough).
test-browser: $(BROWSER_NODE_STAMP)
	@$(MAKE) --no-print-directory SANITIZER= build/elbod
	@test -x /usr/bin/chromium || { echo "test-browser: needs Debian's chromium (make deps)"; exit 1; }
	ELBOD_BIN=build/elbod node tests/browser/run.mjs
