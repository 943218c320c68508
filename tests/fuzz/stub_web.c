/* stub_web: a fake table of the dashboard's files (api/webui.h) for the api fuzzer, in place of
 * the one generated from web/ (build/web/web_assets.c). */
#include "api/webui.h"

static const unsigned char index_html[] = "<!doctype html><title>elbod</title>\n";
static const unsigned char style_css[] = "body { margin: 0 }\n";

const web_asset web_assets[] = {
    {"index.html", "text/html; charset=utf-8", "no-cache", index_html, sizeof index_html - 1},
    {"style.css", "text/css; charset=utf-8", "max-age=3600", style_css, sizeof style_css - 1},
};
const int web_assets_count = sizeof web_assets / sizeof web_assets[0];
