/* stub_service: a fake service layer for the api fuzzer (see stub_service.c). */
#ifndef ELBO_FUZZ_STUB_SERVICE_H
#define ELBO_FUZZ_STUB_SERVICE_H

/* The open session of every fake agent. */
#define STUB_SESSION "s-0001"

/* Names the fuzzer picks {name} from: the first four are agents, the rest are not. */
#define STUB_N_NAMES 8
extern const char *const stub_agent_names[STUB_N_NAMES];

/* API keys: when stub_keys_required is 0, svc_authorize lets everything through (a daemon
 * without a keys file); otherwise it knows these two keys, and refuses any other or none. */
#define STUB_ADMIN_KEY "admin-0123456789abcdef"
#define STUB_ACT_KEY   "act-0123456789abcdef"
extern int stub_keys_required;

#endif
