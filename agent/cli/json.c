// SPDX-License-Identifier: GPL-2.0
/* JSON output: see json.h. */
#include <inttypes.h>

#include "json.h"
#include "origin.h"

void cli_json_write_string(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

void cli_json_init(struct cli_json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->first[0] = true;
	j->after_key = false;
}

/* Before any value or key: the comma that separates it from the last. */
static void separate(struct cli_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
}

static void open_level(struct cli_json *j, char c)
{
	separate(j);
	fputc(c, j->f);
	if (j->depth < CLI_JSON_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void close_level(struct cli_json *j, char c)
{
	fputc(c, j->f);
	if (j->depth)
		j->depth--;
}

void cli_json_begin_object(struct cli_json *j)
{
	open_level(j, '{');
}

void cli_json_end_object(struct cli_json *j)
{
	close_level(j, '}');
}

void cli_json_begin_array(struct cli_json *j)
{
	open_level(j, '[');
}

void cli_json_end_array(struct cli_json *j)
{
	close_level(j, ']');
}

void cli_json_key(struct cli_json *j, const char *key)
{
	separate(j);
	cli_json_write_string(j->f, key);
	fputc(':', j->f);
	j->after_key = true;
}

void cli_json_string(struct cli_json *j, const char *s)
{
	separate(j);
	cli_json_write_string(j->f, s);
}

void cli_json_u64(struct cli_json *j, uint64_t v)
{
	separate(j);
	fprintf(j->f, "%" PRIu64, v);
}

void cli_json_i64(struct cli_json *j, int64_t v)
{
	separate(j);
	fprintf(j->f, "%" PRId64, v);
}

void cli_json_bool(struct cli_json *j, bool v)
{
	separate(j);
	fputs(v ? "true" : "false", j->f);
}

void cli_json_null(struct cli_json *j)
{
	separate(j);
	fputs("null", j->f);
}

void cli_json_finish(struct cli_json *j)
{
	fputc('\n', j->f);
}

void cli_json_start_object(struct cli_json *j, FILE *f)
{
	cli_json_init(j, f);
	cli_json_begin_object(j);
}

void cli_json_finish_object(struct cli_json *j)
{
	cli_json_end_object(j);
	cli_json_finish(j);
}

void cli_json_key_string(struct cli_json *j, const char *key, const char *s)
{
	cli_json_key(j, key);
	cli_json_string(j, s);
}

void cli_json_key_u64(struct cli_json *j, const char *key, uint64_t v)
{
	cli_json_key(j, key);
	cli_json_u64(j, v);
}

void cli_json_key_id(struct cli_json *j, const char *key, const uint8_t *id)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];

	cli_json_key(j, key);
	if (!id) {
		cli_json_null(j);
		return;
	}
	psd_hex_id_format(id, hex);
	cli_json_string(j, hex);
}
