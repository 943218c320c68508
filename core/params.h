/* params: the layout of a model's parameters as named views into one block.
 *
 * A model registers each parameter group (a layer's weights, a head, ...) once; the layout then
 * gives every group an offset into a single float array. The same layout indexes the parameter
 * block, the gradient block and both Adam moment blocks, so a snapshot is one memcpy and a
 * checkpoint one write. Groups start on 16-float boundaries (64 bytes) for aligned vector loads.
 */
#ifndef ELBO_PARAMS_H
#define ELBO_PARAMS_H

#include <stddef.h>

#define PARAMS_MAX_GROUPS 32

typedef struct param_group {
    char name[32];
    size_t offset; /* floats from the start of the block */
    size_t count;  /* floats in the group */
} param_group;

typedef struct param_layout {
    int n_groups;
    param_group groups[PARAMS_MAX_GROUPS];
    size_t total; /* floats in the whole block, padding included */
} param_layout;

void params_layout_init(param_layout *l);
/* Adds a group and returns its offset, or (size_t)-1 when the layout is full (PARAMS_MAX_GROUPS
 * groups, or a total that would not fit in size_t). */
size_t params_layout_add(param_layout *l, const char *name, size_t count);
/* The group with this name, or NULL. */
const param_group *params_layout_find(const param_layout *l, const char *name);

/* A zeroed, 64-byte aligned block of n floats; free it with params_free. NULL on failure. */
float *params_alloc(size_t n);
void params_free(float *p);

#endif
