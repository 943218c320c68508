/* agents: the daemon's hosted agents - registry, sessions, background trainers - and the
 * implementation of api/service.h on top of core/ and the store.
 *
 * DESIGN (threads and locks):
 *  - registry lock: guards the list of hosted agents and their reference counts. Held for a
 *    lookup or an insert, never across I/O or model work. A request takes a reference to the
 *    hosted agent it works on; a deleted agent is unlinked at once and freed at the last release.
 *  - per agent: spec_lock (the mutable settings; copied out), pool_lock (planner workspaces, one
 *    per concurrent request), sess_lock (the session table), tlock + tcond (the trainer's wake-ups
 *    and counters). All short.
 *  - per session: a mutex held for the whole of one act on that session (requests on one session
 *    are serialised; different sessions plan in parallel).
 *  - the trainer thread of each agent runs agent_train_step/agent_publish (core's train_lock);
 *    requests read immutable snapshots and never wait for it.
 * Startup reloads every agent from the store (spec, latest checkpoint, replay window); shutdown
 * stops the trainers and writes a checkpoint of each agent.
 */
#ifndef ELBO_AGENTS_H
#define ELBO_AGENTS_H

#include "config.h"
#include "store.h"

/* Loads every stored agent and starts its trainer. 0 or -1 (logged). */
int agents_start(const daemon_config *cfg, store_t *store);
/* Stops every trainer, checkpoints every agent, frees everything. */
void agents_stop(void);
/* Closes sessions idle for longer than the configured time; returns how many. */
int agents_expire_sessions(void);
/* Marks the daemon ready (after the HTTP listener is up) or not. */
void agents_set_ready(int ready);

#endif
