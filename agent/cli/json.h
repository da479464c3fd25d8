/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hand-written JSON output for --json (RFC 8259): objects, arrays,
 * strings with every control character escaped, unsigned and signed
 * integers, booleans, null. The writer tracks commas; nesting is bounded
 * (CLI_JSON_DEPTH), which is far more than any verb needs.
 *
 *   struct cli_json j;
 *   cli_json_init(&j, stdout);
 *   cli_json_begin_object(&j);
 *   cli_json_key(&j, "name"); cli_json_string(&j, "base");
 *   cli_json_end_object(&j);   -- then cli_json_finish() adds the newline
 */
#ifndef PSC_JSON_H
#define PSC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_JSON_DEPTH	8

struct cli_json {
	FILE *f;
	unsigned int depth;
	bool first[CLI_JSON_DEPTH + 1];	/* no value yet at this level */
	bool after_key;
};

/* Writes s as a JSON string, quotes included. Bytes >= 0x80 pass as
 * they are (UTF-8); controls and DEL become \uXXXX or their short form. */
void cli_json_write_string(FILE *f, const char *s);

void cli_json_init(struct cli_json *j, FILE *f);
void cli_json_begin_object(struct cli_json *j);
void cli_json_end_object(struct cli_json *j);
void cli_json_begin_array(struct cli_json *j);
void cli_json_end_array(struct cli_json *j);
void cli_json_key(struct cli_json *j, const char *key);
void cli_json_string(struct cli_json *j, const char *s);
void cli_json_u64(struct cli_json *j, uint64_t v);
void cli_json_i64(struct cli_json *j, int64_t v);
void cli_json_bool(struct cli_json *j, bool v);
void cli_json_null(struct cli_json *j);
/* A newline after the top-level value. */
void cli_json_finish(struct cli_json *j);

/* Most verbs print one object: cli_json_init() and its '{'; its '}' and
 * cli_json_finish(). */
void cli_json_start_object(struct cli_json *j, FILE *f);
void cli_json_finish_object(struct cli_json *j);

/* An object member: cli_json_key() and its value. */
void cli_json_key_string(struct cli_json *j, const char *key, const char *s);
void cli_json_key_u64(struct cli_json *j, const char *key, uint64_t v);
/* A snapshot id or public key as 64 hex digits; null without one. */
void cli_json_key_id(struct cli_json *j, const char *key, const uint8_t *id);

#endif /* PSC_JSON_H */
