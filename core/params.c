/* params: named views into one parameter block. */
#include "params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void params_layout_init(param_layout *l)
{
    memset(l, 0, sizeof *l);
}

size_t params_layout_add(param_layout *l, const char *name, size_t count)
{
    if (l->n_groups >= PARAMS_MAX_GROUPS)
        return (size_t)-1;
    /* A group whose padded size does not fit in size_t would wrap the total. */
    if (count > SIZE_MAX - 15 || ((count + 15) & ~(size_t)15) > SIZE_MAX - l->total)
        return (size_t)-1;
    param_group *g = &l->groups[l->n_groups++];
    size_t len = strlen(name);
    if (len >= sizeof g->name)
        len = sizeof g->name - 1;
    memcpy(g->name, name, len);
    g->name[len] = '\0';
    g->offset = l->total;
    g->count = count;
    l->total += (count + 15) & ~(size_t)15;
    return g->offset;
}

const param_group *params_layout_find(const param_layout *l, const char *name)
{
    for (int i = 0; i < l->n_groups; i++)
        if (strcmp(l->groups[i].name, name) == 0)
            return &l->groups[i];
    return NULL;
}

float *params_alloc(size_t n)
{
    /* n * sizeof(float) rounded up to 64 bytes must not wrap around to a tiny block. */
    if (n > (SIZE_MAX - 63) / sizeof(float))
        return NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void params_free(float *p)
{
    free(p);
}
