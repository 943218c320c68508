/* config_json: the agent specification <-> JSON, driven by one table of fields per section
 * (model, planner, training), so that decoding, encoding and the documented names agree. */
#ifndef ELBO_CONFIG_JSON_H
#define ELBO_CONFIG_JSON_H

#include <jansson.h>

#include "service.h"

/* Decodes a create request (name, observation_dim, action_dim, action_low, action_high, and the
 * optional sections "model", "planner", "training") over defaults, then validates everything.
 * Returns 0 or -1 with e filled (422 with the field's path). */
int agent_spec_decode(json_t *root, agent_spec *out, svc_error *e);

/* Applies a PATCH body to spec: the sections "planner", "training" and the training weights
 * of "model" may change; shapes may not (422 immutable_field). Validates the result. */
int agent_spec_patch(json_t *root, agent_spec *spec, svc_error *e);

/* The full specification as JSON (new reference). */
json_t *agent_spec_encode(const agent_spec *spec);

/* The whole spec encoded as a compact JSON text (malloc'd), for the store. */
char *agent_spec_to_text(const agent_spec *spec);
/* The reverse (for agents reloaded from the store); 0 or -1. */
int agent_spec_from_text(const char *text, agent_spec *out, svc_error *e);

#endif
