/* --update: rewrites a suite's expected values with the measured ones,
 * keeping bands, every other key and the key order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "regress/compare.h"
#include "regress/suite.h"

/* Reals are written with 15 significant digits: every decimal of up to 15
 * digits (all a person writes) reads back and prints unchanged, and 15
 * digits of a measured value is far below any useful band. */
#define UPDATE_DUMP_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

static double round15(double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.15g", v);
    return strtod(buf, NULL);
}

/* Sets the new values in doc (a copy of s->doc); returns how many changed
 * and appends one diff line per change. */
static size_t apply(const xf_regress_suite *s, const xf_regress_results *r, json_t *doc,
                    double (*newv)[XF_REGRESS_N_METRICS], FILE *diff)
{
    json_t *cases = json_object_get(doc, "cases");
    size_t changed = 0;
    for (size_t i = 0; i < s->n_cases; i++) {
        const xf_regress_case *c = &s->cases[i];
        const xf_regress_case_result *cr = &r->cases[i];
        for (int m = 0; m < XF_REGRESS_N_METRICS; m++)
            newv[i][m] = c->expect[m].value;
        if (!cr->selected || cr->exec != XF_REGRESS_EXEC_OK)
            continue;
        json_t *expect = json_object_get(json_array_get(cases, i), "expect");
        for (int m = 0; m < XF_REGRESS_N_METRICS; m++) {
            const xf_regress_band *b = &c->expect[m];
            double got = xf_regress_metrics_get(&cr->got, (xf_regress_metric)m);
            if (!b->present || !isfinite(got))
                continue;
            double v = round15(got);
            if (v == b->value)
                continue;
            const char *name = xf_regress_metric_name((xf_regress_metric)m);
            /* json_object_set_new on an existing key keeps its position. */
            json_object_set_new(json_object_get(expect, name), "value", json_real(v));
            newv[i][m] = v;
            changed++;
            if (b->pending) /* a first baseline: no old value to compare */
                fprintf(diff, "%s %s: null -> %.15g", c->id, name, v);
            else
                fprintf(diff, "%s %s: %.15g -> %.15g", c->id, name, b->value, v);
            if (!b->pending && b->value != 0)
                fprintf(diff, " (%+.2f%%)", 100.0 * (v - b->value) / fabs(b->value));
            fputc('\n', diff);
        }
    }
    return changed;
}

static int write_text(const char *path, const char *text, xf_error *err)
{
    xf_atomic_file f;
    if (xf_atomic_open(&f, path, err))
        return -1;
    if (xf_atomic_write(&f, text, strlen(text), err) || xf_atomic_commit(&f, err)) {
        xf_atomic_abort(&f);
        return -1;
    }
    xf_atomic_abort(&f); /* frees after commit */
    return 0;
}

int xf_regress_suite_update(xf_regress_suite *s, const struct xf_regress_results *r, char **diff,
                            xf_error *err)
{
    if (diff)
        *diff = NULL;
    if (r->suite != s)
        return xf_fail(err, "%s: update with results of another suite", s->path);
    char *dbuf = NULL, *text = NULL;
    size_t dlen = 0;
    FILE *d = open_memstream(&dbuf, &dlen);
    json_t *doc = json_deep_copy(s->doc);
    double(*newv)[XF_REGRESS_N_METRICS] = calloc(s->n_cases, sizeof *newv);
    int rc = -1;
    if (!d || !doc || !newv) {
        xf_fail(err, "%s: out of memory", s->path);
        goto out;
    }
    size_t changed = apply(s, r, doc, newv, d);
    if (changed == 0)
        fputs("no expected value changed\n", d);
    if (fflush(d) != 0) {
        xf_fail(err, "%s: out of memory", s->path);
        goto out;
    }
    if (changed > 0) {
        char *body = json_dumps(doc, UPDATE_DUMP_FLAGS);
        if (!body || !(text = malloc(strlen(body) + 2))) {
            free(body);
            xf_fail(err, "%s: out of memory", s->path);
            goto out;
        }
        sprintf(text, "%s\n", body);
        free(body);
        /* Never write a file that would not load again. */
        xf_regress_suite check;
        if (xf_regress_suite_parse(&check, text, strlen(text), s->path, s->root, err)) {
            xf_fail_prefix(err, "%s: updated suite does not validate", s->path);
            goto out;
        }
        xf_regress_suite_free(&check);
        if (write_text(s->path, text, err))
            goto out;
        json_t *old = s->doc;
        s->doc = doc;
        doc = old;
        for (size_t i = 0; i < s->n_cases; i++)
            for (int m = 0; m < XF_REGRESS_N_METRICS; m++) {
                s->cases[i].expect[m].value = newv[i][m];
                s->cases[i].expect[m].pending = isnan(newv[i][m]);
            }
    }
    rc = 0;
out:
    if (d)
        fclose(d);
    if (rc == 0 && diff)
        *diff = dbuf;
    else
        free(dbuf);
    free(text);
    free(newv);
    json_decref(doc);
    return rc;
}
