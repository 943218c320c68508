/* webui: lookup in the embedded dashboard files (see webui.h). */
#include "webui.h"

#include <string.h>

const web_asset *web_asset_find(const char *name)
{
    for (int i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].name, name) == 0)
            return &web_assets[i];
    return NULL;
}
