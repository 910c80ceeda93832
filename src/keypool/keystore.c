/*
 * keystore.c - persist and restore key health through the store (issue 5:
 * a restart keeps disabled keys disabled and cooldowns cooling).
 */
#include "keypool/keystore.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

void gb_keystore_on_change(void *ud, const struct gb_key_snapshot *s)
{
    struct gb_store *st = ud;
    struct gb_store_key k;

    if (st == NULL)
        return;
    if (s->deleted) {
        gb_store_delete_key(st, s->hash);
        return;
    }
    memset(&k, 0, sizeof k);
    snprintf(k.key_hash, sizeof k.key_hash, "%s", s->hash);
    snprintf(k.key_id, sizeof k.key_id, "%s", s->id);
    k.secret = s->from_admin ? s->key : NULL;
    k.disabled = s->disabled;
    k.failures = s->failures;
    snprintf(k.last_error, sizeof k.last_error, "%s", s->last_error ? s->last_error : "");
    for (size_t i = 0; i < s->ncool && k.ncooldowns < 16; i++) {
        snprintf(k.cooldowns[k.ncooldowns].model, sizeof k.cooldowns[0].model, "%s",
                 s->cool_model[i]);
        k.cooldowns[k.ncooldowns++].until_ms = s->cool_until[i];
    }
    gb_store_save_key(st, &k);
}

void gb_keystore_on_change_fanout(void *ud, const struct gb_key_snapshot *s)
{
    const struct gb_keystore_fanout *f = ud;

    gb_keystore_on_change(f->store, s);
    if (f->next != NULL)
        f->next(f->next_ud, s);
}

struct restore_ctx {
    struct gb_keypool *kp;
    int restored;
};

static void on_key(void *ud, const struct gb_store_key *k, const char *secret)
{
    struct restore_ctx *c = ud;
    const char *models[16];
    int64_t until[16];
    uint32_t idx;

    if (gb_keypool_find_hash(c->kp, k->key_hash, &idx) < 0) {
        /* not in .env: only keys an admin added come back */
        if (secret == NULL)
            return;
        int rc = gb_keypool_add(c->kp, secret, 1, &idx);
        if (rc < 0 && rc != GB_EAGAIN)
            return;
        if (rc >= 0)
            idx = (uint32_t)rc;
    }
    for (size_t i = 0; i < k->ncooldowns && i < 16; i++) {
        models[i] = k->cooldowns[i].model;
        until[i] = k->cooldowns[i].until_ms;
    }
    gb_keypool_restore(c->kp, idx, k->disabled, k->failures, k->last_error, k->ncooldowns, models,
                       until);
    c->restored++;
}

int gb_keystore_restore(struct gb_store *st, struct gb_keypool *kp)
{
    struct restore_ctx c = {kp, 0};
    int rc = gb_store_load_keys(st, on_key, &c);

    return rc < 0 ? rc : c.restored;
}
