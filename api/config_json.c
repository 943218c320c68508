/* config_json: agent specification <-> JSON (see config_json.h). */
#include "config_json.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef enum ftype { F_INT, F_FLOAT, F_U64, F_BOOL, F_ACT, F_METHOD } ftype;

typedef struct cfield {
    const char *name;
    ftype type;
    size_t offset;
    int mutable_; /* may change on a live agent (PATCH) */
} cfield;

#define MF(n, t, m)                         \
    {                                       \
#n, t, offsetof(model_config, n), m \
    }
static const cfield model_fields[] = {
    MF(h_dim, F_INT, 0),
    MF(z_dim, F_INT, 0),
    MF(hidden, F_INT, 0),
    MF(head_layers, F_INT, 0),
    {"activation", F_ACT, offsetof(model_config, act), 0},
    MF(obs_std, F_FLOAT, 1),
    MF(reward_std, F_FLOAT, 1),
    MF(min_std, F_FLOAT, 1),
    MF(free_nats, F_FLOAT, 1),
    MF(beta_z, F_FLOAT, 1),
    MF(beta_a, F_FLOAT, 1),
    MF(overshoot, F_FLOAT, 1),
    MF(overshoot_len, F_INT, 0),
    MF(value_weight, F_FLOAT, 0),
    MF(discount, F_FLOAT, 1),
    MF(info_samples, F_INT, 0),
    MF(seq_len, F_INT, 0),
    MF(batch, F_INT, 0),
    MF(lr, F_FLOAT, 1),
    MF(clip_norm, F_FLOAT, 1),
    MF(replay_capacity, F_INT, 0),
    MF(seed, F_U64, 0),
};
#undef MF

#define PF(n, t)                              \
    {                                         \
#n, t, offsetof(planner_config, n), 1 \
    }
static const cfield planner_fields[] = {
    {"method", F_METHOD, offsetof(planner_config, method), 1},
    PF(horizon, F_INT),
    PF(population, F_INT),
    PF(iterations, F_INT),
    PF(elites, F_INT),
    PF(policy_fraction, F_FLOAT),
    PF(temperature, F_FLOAT),
    PF(beta_info, F_FLOAT),
    PF(beta_action, F_FLOAT),
    PF(discount, F_FLOAT),
    PF(init_std, F_FLOAT),
    PF(min_std, F_FLOAT),
    PF(momentum, F_FLOAT),
    PF(use_value, F_BOOL),
    PF(warm_start, F_BOOL),
    PF(init_from_prior, F_BOOL),
};
#undef PF

#define TF(n, t)                            \
    {                                       \
#n, t, offsetof(train_config, n), 1 \
    }
static const cfield train_fields[] = {
    TF(train_ratio, F_FLOAT),
    TF(min_transitions, F_INT),
    TF(max_steps_per_sec, F_FLOAT),
    TF(checkpoint_every_s, F_INT),
};
#undef TF

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static int decode_section(json_t *obj, const char *where, const cfield *fields, size_t n,
                          void *base, int patch, svc_error *e)
{
    if (!json_is_object(obj))
        return svc_fail(e, 422, "invalid_type", where, "'%s' must be an object", where);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const cfield *f = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(fields[i].name, key) == 0)
                f = &fields[i];
        char path[96];
        snprintf(path, sizeof path, "%s.%s", where, key);
        if (!f)
            return svc_fail(e, 422, "unknown_field", path, "unknown field '%s'", path);
        if (patch && !f->mutable_)
            return svc_fail(e, 422, "immutable_field", path,
                            "'%s' cannot change on a live agent (create a new agent)", path);
        char *p = (char *)base + f->offset;
        switch (f->type) {
        case F_INT:
        case F_U64: {
            if (!json_is_integer(v))
                return svc_fail(e, 422, "invalid_type", path, "'%s' must be an integer", path);
            json_int_t x = json_integer_value(v);
            if (f->type == F_U64) {
                if (x < 0)
                    return svc_fail(e, 422, "out_of_range", path, "'%s' must be >= 0", path);
                *(uint64_t *)p = (uint64_t)x;
            } else {
                if (x < -2147483647 || x > 2147483647)
                    return svc_fail(e, 422, "out_of_range", path, "'%s' is out of range", path);
                *(int *)p = (int)x;
            }
            break;
        }
        case F_FLOAT: {
            float x;
            if (jd_float(obj, key, where, 1, -1e30, 1e30, &x, e) < 0)
                return -1;
            *(float *)p = x;
            break;
        }
        case F_BOOL:
            if (!json_is_boolean(v))
                return svc_fail(e, 422, "invalid_type", path, "'%s' must be true or false", path);
            *(int *)p = json_is_true(v);
            break;
        case F_ACT: {
            int k = json_is_string(v) ? act_from_name(json_string_value(v)) : -1;
            if (k <= 0)
                return svc_fail(e, 422, "invalid_value", path,
                                "'%s' must be one of tanh, relu, silu, elu", path);
            *(act_kind *)p = (act_kind)k;
            break;
        }
        case F_METHOD: {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(s, "mppi") == 0)
                *(plan_method *)p = PLAN_MPPI;
            else if (strcmp(s, "cem") == 0)
                *(plan_method *)p = PLAN_CEM;
            else
                return svc_fail(e, 422, "invalid_value", path, "'%s' must be mppi or cem", path);
            break;
        }
        }
    }
    return 0;
}

static json_t *encode_section(const cfield *fields, size_t n, const void *base)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)base + fields[i].offset;
        json_t *v = NULL;
        switch (fields[i].type) {
        case F_INT:
            v = json_integer(*(const int *)p);
            break;
        case F_U64:
            v = json_integer((json_int_t) * (const uint64_t *)p);
            break;
        case F_FLOAT:
            v = je_real(*(const float *)p);
            break;
        case F_BOOL:
            v = json_boolean(*(const int *)p);
            break;
        case F_ACT:
            v = json_string(act_name(*(const act_kind *)p));
            break;
        case F_METHOD:
            v = json_string(*(const plan_method *)p == PLAN_CEM ? "cem" : "mppi");
            break;
        }
        json_object_set_new(o, fields[i].name, v);
    }
    return o;
}

/* Runs the core validators and turns "field: message" into a 422 naming the field. */
static int validate_all(const agent_spec *s, svc_error *e)
{
    char err[256];
    const char *section = "model";
    int bad = model_config_validate(&s->model, err, sizeof err);
    if (!bad) {
        section = "planner";
        bad = planner_config_validate(&s->planner, err, sizeof err);
    }
    if (!bad) {
        section = "training";
        bad = train_config_validate(&s->train, err, sizeof err);
    }
    if (!bad)
        return 0;
    char field[64] = "";
    const char *colon = strchr(err, ':');
    if (colon && (size_t)(colon - err) < 40) {
        char name[48];
        memcpy(name, err, (size_t)(colon - err));
        name[colon - err] = '\0';
        /* Top-level names are the ones users give outside the sections. */
        if (strcmp(name, "observation_dim") == 0 || strcmp(name, "action_dim") == 0 ||
            strcmp(name, "action_low") == 0 || strcmp(name, "action_high") == 0)
            snprintf(field, sizeof field, "%s", name);
        else
            snprintf(field, sizeof field, "%s.%s", section, name);
    }
    return svc_fail(e, 422, "invalid_config", field, "%s", err);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SVC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return s[0] != '.';
}

static const char *const create_keys[] = {"name",       "observation_dim", "action_dim",
                                          "action_low", "action_high",     "model",
                                          "planner",    "training",        NULL};

static void spec_defaults(agent_spec *s, int dx, int da)
{
    memset(s, 0, sizeof *s);
    model_config_defaults(&s->model, dx, da);
    planner_config_defaults(&s->planner);
    train_config_defaults(&s->train);
}

int agent_spec_decode(json_t *root, agent_spec *out, svc_error *e)
{
    if (!json_is_object(root))
        return svc_fail(e, 422, "invalid_type", "", "the request body must be a JSON object");
    if (jd_check_keys(root, create_keys, "", e))
        return -1;
    const char *name;
    int dx, da;
    if (jd_string(root, "name", "", 1, SVC_NAME_MAX, &name, e) < 0)
        return -1;
    if (!valid_name(name))
        return svc_fail(e, 422, "invalid_value", "name",
                        "'name' must be 1-%d characters of letters, digits, '-', '_' or '.' "
                        "(not starting with '.')",
                        SVC_NAME_MAX);
    if (jd_int(root, "observation_dim", "", 1, 1, MODEL_MAX_OBS, &dx, e) < 0 ||
        jd_int(root, "action_dim", "", 1, 1, MODEL_MAX_ACT, &da, e) < 0)
        return -1;
    spec_defaults(out, dx, da);
    snprintf(out->name, sizeof out->name, "%s", name);
    json_t *lo = json_object_get(root, "action_low"), *hi = json_object_get(root, "action_high");
    if (!lo || !hi)
        return svc_fail(e, 422, "missing_field", lo ? "action_high" : "action_low",
                        "'action_low' and 'action_high' are required (the action box)");
    if (jd_float_array(lo, "action_low", out->model.act_low, da, da, NULL, e) ||
        jd_float_array(hi, "action_high", out->model.act_high, da, da, NULL, e))
        return -1;
    json_t *sec;
    if ((sec = json_object_get(root, "model")) &&
        decode_section(sec, "model", model_fields, NFIELDS(model_fields), &out->model, 0, e))
        return -1;
    if ((sec = json_object_get(root, "planner")) &&
        decode_section(sec, "planner", planner_fields, NFIELDS(planner_fields), &out->planner, 0,
                       e))
        return -1;
    if ((sec = json_object_get(root, "training")) &&
        decode_section(sec, "training", train_fields, NFIELDS(train_fields), &out->train, 0, e))
        return -1;
    return validate_all(out, e);
}

static const char *const patch_keys[] = {"model", "planner", "training", NULL};

int agent_spec_patch(json_t *root, agent_spec *spec, svc_error *e)
{
    if (!json_is_object(root))
        return svc_fail(e, 422, "invalid_type", "", "the request body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        (void)v;
        int known = 0;
        for (const char *const *k = patch_keys; *k; k++)
            known |= strcmp(*k, key) == 0;
        if (known)
            continue;
        int immutable = 0;
        for (const char *const *k = create_keys; *k; k++)
            immutable |= strcmp(*k, key) == 0;
        return svc_fail(e, 422, immutable ? "immutable_field" : "unknown_field", key,
                        "'%s' cannot be changed; PATCH accepts model (training weights), "
                        "planner and training",
                        key);
    }
    agent_spec s = *spec;
    json_t *sec;
    if ((sec = json_object_get(root, "model")) &&
        decode_section(sec, "model", model_fields, NFIELDS(model_fields), &s.model, 1, e))
        return -1;
    if ((sec = json_object_get(root, "planner")) &&
        decode_section(sec, "planner", planner_fields, NFIELDS(planner_fields), &s.planner, 1, e))
        return -1;
    if ((sec = json_object_get(root, "training")) &&
        decode_section(sec, "training", train_fields, NFIELDS(train_fields), &s.train, 1, e))
        return -1;
    if (validate_all(&s, e))
        return -1;
    *spec = s;
    return 0;
}

json_t *agent_spec_encode(const agent_spec *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "observation_dim", json_integer(s->model.obs_dim));
    json_object_set_new(o, "action_dim", json_integer(s->model.act_dim));
    json_object_set_new(o, "action_low", je_floats(s->model.act_low, s->model.act_dim));
    json_object_set_new(o, "action_high", je_floats(s->model.act_high, s->model.act_dim));
    json_object_set_new(o, "model", encode_section(model_fields, NFIELDS(model_fields), &s->model));
    json_object_set_new(o, "planner",
                        encode_section(planner_fields, NFIELDS(planner_fields), &s->planner));
    json_object_set_new(o, "training",
                        encode_section(train_fields, NFIELDS(train_fields), &s->train));
    return o;
}

char *agent_spec_to_text(const agent_spec *spec)
{
    json_t *o = agent_spec_encode(spec);
    char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(o);
    return t;
}

int agent_spec_from_text(const char *text, agent_spec *out, svc_error *e)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return svc_fail(e, 500, "corrupt_store", "", "stored agent configuration unreadable: %s",
                        je.text);
    int rc = agent_spec_decode(root, out, e);
    json_decref(root);
    return rc;
}
