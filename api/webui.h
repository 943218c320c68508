/* webui: the dashboard's static files (the .html, .js and .css files of web/), embedded in the
 * binary at build time. web/embed.sh generates the table from web/ (build/web/web_assets.c, see
 * web/web.mk); api/api.c serves it at GET / (index.html) and GET /ui/{file}. Nothing here touches
 * sockets.
 */
#ifndef ELBO_WEBUI_H
#define ELBO_WEBUI_H

#include <stddef.h>

typedef struct web_asset {
    const char *name;          /* the file name in web/, e.g. "index.html" */
    const char *content_type;  /* e.g. "text/html; charset=utf-8" */
    const char *cache_control; /* the Cache-Control header to send */
    const unsigned char *data;
    size_t len;
} web_asset;

/* The generated table (build/web/web_assets.c). */
extern const web_asset web_assets[];
extern const int web_assets_count;

/* The embedded file of that name, or NULL. */
const web_asset *web_asset_find(const char *name);

#endif
