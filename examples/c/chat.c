/*
 * chat: a stateless chat in C99 over the convstate C API, on an embedded SQLite file by default.
 *
 *   chat [--db URL] [--user ID] [--conversation ID] [--message TEXT]...
 *
 * Every turn goes through convstate_turn(), which stores the user message, loads the history,
 * calls the agent below and stores its output. The process keeps nothing between turns: run it
 * again with --conversation ID and the conversation continues. With --message (repeatable) it
 * runs those turns and exits; otherwise it reads lines from standard input ("/history" prints
 * the stored conversation, "/quit" or end of input leaves).
 *
 * The agent is the C port of examples/demo_agent.hpp: deterministic, with two local tools (a
 * calculator and a UTC clock), so tool calls are shown without any model or network. It reads
 * the history it is given as JSON with the small JSON reader below (no JSON library).
 *
 * Exit status: 0 on success, 1 on an error, 2 on bad arguments, 3 if the conversation is not
 * found (missing, or another user's).
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <convstate/convstate.h>

/* ---- memory and a growable string ------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("chat: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

typedef struct {
    char *data;
    size_t len, cap;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    while (b->len + extra + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 64;
    b->data = xrealloc(b->data, b->cap);
}

static void sb_putn(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }

static void sb_printf(sbuf *b, const char *format, ...) {
    va_list args;
    int n;
    va_start(args, format);
    n = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (n < 0) return;
    sb_reserve(b, (size_t)n);
    va_start(args, format);
    vsnprintf(b->data + b->len, (size_t)n + 1, format, args);
    va_end(args);
    b->len += (size_t)n;
}

/* Appends s as a JSON string literal (quotes included). */
static void sb_put_json_string(sbuf *b, const char *s) {
    sb_putc(b, '"');
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            if (c < 0x20)
                sb_printf(b, "\\u%04x", (unsigned)c);
            else
                sb_putc(b, (char)c);
        }
    }
    sb_putc(b, '"');
}

/* Empties the buffer (keeping its memory). */
static void sb_clear(sbuf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

/* The string built so far, "" when empty; the buffer keeps owning it. */
static const char *sb_str(const sbuf *b) { return b->data ? b->data : ""; }

static void sb_free(sbuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- a small JSON reader ------------------------------------------------------------------------
 * Enough to read what convstate writes: walk objects and arrays, skip any value, decode strings
 * (every escape, \uXXXX to UTF-8 with surrogate pairs). Functions return NULL on malformed input. */

enum { JSON_MAX_DEPTH = 64 };

static const char *json_ws(const char *p) {
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    return p;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; ++i) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static void put_utf8(sbuf *b, unsigned cp) {
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        sb_putn(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        sb_putn(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sb_putn(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        sb_putn(b, u, 4);
    }
}

/* p at the opening quote. Decodes into out (when not NULL); returns the position after the
 * closing quote, or NULL. A \u0000 or a lone surrogate is refused: a C string cannot hold the
 * first, and valid UTF-8 (all convstate stores) never needs the second. */
static const char *json_string(const char *p, sbuf *out) {
    if (!p || *p != '"') return NULL;
    for (++p;; ++p) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c == '\0' || c < 0x20) return NULL;
        if (c != '\\') {
            if (out) sb_putc(out, (char)c);
            continue;
        }
        ++p;
        switch (*p) {
        case '"': if (out) sb_putc(out, '"'); break;
        case '\\': if (out) sb_putc(out, '\\'); break;
        case '/': if (out) sb_putc(out, '/'); break;
        case 'b': if (out) sb_putc(out, '\b'); break;
        case 'f': if (out) sb_putc(out, '\f'); break;
        case 'n': if (out) sb_putc(out, '\n'); break;
        case 'r': if (out) sb_putc(out, '\r'); break;
        case 't': if (out) sb_putc(out, '\t'); break;
        case 'u': {
            unsigned cp, low;
            if (!hex4(p + 1, &cp)) return NULL;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: its low half must follow */
                if (p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, &low) || low < 0xDC00 || low > 0xDFFF) return NULL;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                return NULL;
            }
            if (out) put_utf8(out, cp);
            break;
        }
        default: return NULL;
        }
    }
}

/* Skips one value of any kind starting at p (whitespace first); returns the position after it. */
static const char *json_skip(const char *p, int depth) {
    p = json_ws(p);
    if (!p || depth > JSON_MAX_DEPTH) return NULL;
    if (*p == '"') return json_string(p, NULL);
    if (*p == '{' || *p == '[') {
        const char close = *p == '{' ? '}' : ']';
        p = json_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = json_ws(json_string(json_ws(p), NULL));
                if (!p || *p != ':') return NULL;
                ++p;
            }
            p = json_ws(json_skip(p, depth + 1));
            if (!p) return NULL;
            if (*p == close) return p + 1;
            if (*p != ',') return NULL;
            ++p;
        }
    }
    if (*p == '-' || (*p >= '0' && *p <= '9')) { /* -? int frac? exp? */
        if (*p == '-') ++p;
        if (*p == '0') ++p;
        else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') ++p;
        else return NULL;
        if (*p == '.') {
            if (!(*++p >= '0' && *p <= '9')) return NULL;
            while (*p >= '0' && *p <= '9') ++p;
        }
        if (*p == 'e' || *p == 'E') {
            ++p;
            if (*p == '+' || *p == '-') ++p;
            if (!(*p >= '0' && *p <= '9')) return NULL;
            while (*p >= '0' && *p <= '9') ++p;
        }
        return p;
    }
    if (strncmp(p, "true", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    if (strncmp(p, "null", 4) == 0) return p + 4;
    return NULL;
}

/* The value of member `key` of the object at obj (top level only), or NULL. */
static const char *json_member(const char *obj, const char *key) {
    const char *p = json_ws(obj);
    sbuf name = {0};
    if (!p || *p != '{') return NULL;
    p = json_ws(p + 1);
    if (*p == '}') return NULL;
    for (;;) {
        sb_clear(&name);
        p = json_ws(json_string(p, &name));
        if (!p || *p != ':') break;
        p = json_ws(p + 1);
        if (strcmp(sb_str(&name), key) == 0) {
            sb_free(&name);
            return p;
        }
        p = json_ws(json_skip(p, 1));
        if (!p || *p != ',') break;
        p = json_ws(p + 1);
    }
    sb_free(&name);
    return NULL;
}

/* The string member `key` of obj, decoded into out (appended). 1 on success; null counts as "". */
static int json_member_string(const char *obj, const char *key, sbuf *out) {
    const char *v = json_member(obj, key);
    if (v && strncmp(v, "null", 4) == 0) return 1;
    return v && json_string(v, out) != NULL;
}

static long long json_member_int(const char *obj, const char *key, long long fallback) {
    const char *v = json_member(obj, key);
    char *end;
    long long n;
    if (!v) return fallback;
    n = strtoll(v, &end, 10);
    return end == v ? fallback : n;
}

/* Iterates a JSON array: *p at '[' first; each call yields the next element or NULL at the end
 * (and sets *ok to 0 on malformed input). */
static const char *json_next(const char **p, int *ok) {
    const char *q = json_ws(*p);
    if (!q) {
        *ok = 0;
        return NULL;
    }
    if (*q == '[') {
        q = json_ws(q + 1);
        if (*q == ']') {
            *p = q + 1;
            return NULL;
        }
    } else if (*q == ',') {
        q = json_ws(q + 1);
    } else {
        if (*q != ']') *ok = 0;
        return NULL;
    }
    *p = json_skip(q, 1);
    if (!*p) {
        *ok = 0;
        return NULL;
    }
    return q;
}

/* ---- the calculator (demo_agent.hpp's grammar) ----------------------------------------------------
 * expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
 * factor := number | '(' expression ')' | '-' factor */

typedef struct {
    const char *text;
    size_t pos, len;
    int depth;
    char error[64]; /* "" while all is well */
} calc;

static void calc_skip(calc *c) {
    while (c->pos < c->len && c->text[c->pos] == ' ') ++c->pos;
}

static int calc_eat(calc *c, char ch) {
    calc_skip(c);
    if (c->pos < c->len && c->text[c->pos] == ch) {
        ++c->pos;
        return 1;
    }
    return 0;
}

static void calc_fail(calc *c, const char *message) {
    if (!c->error[0]) snprintf(c->error, sizeof c->error, "%s", message);
}

static double calc_expression(calc *c);

static double calc_factor(calc *c) {
    size_t start;
    char number[64];
    double v;
    if (c->error[0]) return 0;
    if (++c->depth > 200) {
        calc_fail(c, "too deeply nested");
        return 0;
    }
    if (calc_eat(c, '-')) {
        v = -calc_factor(c);
    } else if (calc_eat(c, '(')) {
        v = calc_expression(c);
        if (!calc_eat(c, ')')) calc_fail(c, "missing ')'");
    } else {
        calc_skip(c);
        start = c->pos;
        while (c->pos < c->len && (isdigit((unsigned char)c->text[c->pos]) || c->text[c->pos] == '.')) ++c->pos;
        if (start == c->pos || c->pos - start >= sizeof number) {
            calc_fail(c, start == c->pos ? "expected a number" : "number too long");
            v = 0;
        } else {
            char *end;
            memcpy(number, c->text + start, c->pos - start);
            number[c->pos - start] = '\0';
            v = strtod(number, &end);
            if (end == number) calc_fail(c, "expected a number"); /* e.g. "." */
        }
    }
    --c->depth;
    return v;
}

static double calc_term(calc *c) {
    double v = calc_factor(c);
    while (!c->error[0]) {
        if (calc_eat(c, '*')) {
            v *= calc_factor(c);
        } else if (calc_eat(c, '/')) {
            const double d = calc_factor(c);
            if (d == 0) {
                calc_fail(c, "division by zero");
                return 0;
            }
            v /= d;
        } else {
            break;
        }
    }
    return v;
}

static double calc_expression(calc *c) {
    double v = calc_term(c);
    while (!c->error[0]) {
        if (calc_eat(c, '+')) v += calc_term(c);
        else if (calc_eat(c, '-')) v -= calc_term(c);
        else break;
    }
    return v;
}

/* Evaluates text into result: the number formatted, or "error: …". */
static void calculate(const char *text, char *result, size_t size) {
    calc c;
    double v;
    memset(&c, 0, sizeof c);
    c.text = text;
    c.len = strlen(text);
    v = calc_expression(&c);
    calc_skip(&c);
    if (!c.error[0] && c.pos != c.len) snprintf(c.error, sizeof c.error, "unexpected '%c'", c.text[c.pos]);
    if (c.error[0])
        snprintf(result, size, "error: %s", c.error);
    else if (fabs(v - round(v)) < 1e-9 && fabs(v) < 1e15)
        snprintf(result, size, "%.0f", v);
    else
        snprintf(result, size, "%.6g", v);
}

/* The longest run of "0-9 + - * / ( ) . space" holding a digit and an operator, trimmed; "" if
 * none. Returns a malloc'd string. */
static char *find_expression(const char *text) {
    static const char allowed[] = "0123456789+-*/(). ";
    size_t best_start = 0, best_len = 0, i = 0, n = strlen(text);
    char *out;
    while (i < n) {
        size_t start = i, end, a, b;
        int digit = 0, op = 0;
        if (!strchr(allowed, text[i])) {
            ++i;
            continue;
        }
        while (i < n && strchr(allowed, text[i])) {
            digit |= isdigit((unsigned char)text[i]) != 0;
            op |= strchr("+-*/", text[i]) != NULL;
            ++i;
        }
        end = i;
        for (a = start; a < end && text[a] == ' '; ++a) {}
        for (b = end; b > a && text[b - 1] == ' '; --b) {}
        if (digit && op && b - a > best_len) {
            best_start = a;
            best_len = b - a;
        }
    }
    out = xrealloc(NULL, best_len + 1);
    memcpy(out, text + best_start, best_len);
    out[best_len] = '\0';
    return out;
}

static void utc_now(char *out, size_t size) {
    const time_t t = time(NULL);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the agent -------------------------------------------------------------------------------- */

/* What the last call did, for display (the agent keeps no conversation state). */
typedef struct {
    sbuf tool_call;   /* "[tool call call_3] calculator({…})", or empty */
    sbuf tool_result; /* "[tool result call_3] 42", or empty */
} agent_display;

/* Stores an assistant message calling `name` and the tool's answer, before the reply. */
static convstate_status call_tool(convstate_reply *reply, agent_display *show, long long seq, const char *name,
                                  const char *arguments, const char *result) {
    sbuf call = {0}, answer = {0}, id = {0};
    convstate_status s;
    sb_printf(&id, "call_%lld", seq);
    sb_puts(&call, "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":");
    sb_put_json_string(&call, sb_str(&id));
    sb_puts(&call, ",\"type\":\"function\",\"function\":{\"name\":");
    sb_put_json_string(&call, name);
    sb_puts(&call, ",\"arguments\":");
    sb_put_json_string(&call, arguments); /* the arguments are JSON text inside a JSON string */
    sb_puts(&call, "}}]}");
    sb_puts(&answer, "{\"role\":\"tool\",\"name\":");
    sb_put_json_string(&answer, name);
    sb_puts(&answer, ",\"tool_call_id\":");
    sb_put_json_string(&answer, sb_str(&id));
    sb_puts(&answer, ",\"content\":");
    sb_put_json_string(&answer, result);
    sb_putc(&answer, '}');
    s = convstate_reply_add_message(reply, sb_str(&call));
    if (s == CONVSTATE_OK) s = convstate_reply_add_message(reply, sb_str(&answer));
    if (s == CONVSTATE_OK) {
        sb_printf(&show->tool_call, "[tool call %s] %s(%s)", sb_str(&id), name, arguments);
        sb_printf(&show->tool_result, "[tool result %s] %s", sb_str(&id), result);
    }
    sb_free(&call);
    sb_free(&answer);
    sb_free(&id);
    return s;
}

static convstate_status fail_agent(convstate_reply *reply, const char *why) {
    convstate_reply_set_error(reply, why);
    return CONVSTATE_INTERNAL_ERROR;
}

/* One tool round when the message asks for arithmetic or the time, then a reply. It answers from
 * the history it is given: the last element is this turn's user message. */
static int demo_agent(void *context, const char *history_json, const char *user_id,
                                   const char *conversation_id, convstate_reply *reply) {
    agent_display *show = (agent_display *)context;
    sbuf said = {0}, previous = {0}, role = {0}, text = {0}, answer = {0};
    const char *cursor = history_json, *element, *last = NULL;
    long long said_seq = 0;
    int user_turns = 0, ok = 1;
    convstate_status s = CONVSTATE_OK;
    char *expression = NULL, *lower;
    size_t i;
    (void)user_id;
    (void)conversation_id;
    sb_clear(&show->tool_call);
    sb_clear(&show->tool_result);

    /* Read the history: every user message's content, the last one being `said`. */
    while ((element = json_next(&cursor, &ok)) != NULL) {
        last = element;
        sb_clear(&role);
        if (!json_member_string(element, "role", &role)) {
            ok = 0;
            break;
        }
        if (strcmp(sb_str(&role), "user") != 0) continue;
        ++user_turns;
        sb_clear(&text);
        if (!json_member_string(element, "content", &text)) {
            ok = 0;
            break;
        }
        if (said.len || said_seq) { /* the user message before: now "previous" */
            sb_clear(&previous);
            sb_puts(&previous, sb_str(&said));
        }
        sb_clear(&said);
        sb_puts(&said, sb_str(&text));
        said_seq = json_member_int(element, "seq", 0);
    }
    if (ok && (last == NULL || said_seq == 0 || json_member_int(last, "seq", -1) != said_seq)) ok = 0;
    if (!ok) {
        s = fail_agent(reply, "cannot read the history (the last message must be the user's)");
        goto done;
    }

    lower = xstrdup(sb_str(&said));
    for (i = 0; lower[i]; ++i) lower[i] = (char)tolower((unsigned char)lower[i]);
    expression = find_expression(sb_str(&said));
    if (expression[0]) {
        char result[128];
        sbuf arguments = {0};
        calculate(expression, result, sizeof result);
        sb_puts(&arguments, "{\"expression\":");
        sb_put_json_string(&arguments, expression);
        sb_putc(&arguments, '}');
        s = call_tool(reply, show, said_seq, "calculator", sb_str(&arguments), result);
        sb_free(&arguments);
        sb_printf(&answer, "%s = %s", expression, result);
    } else if (strstr(lower, "time")) {
        char now[32];
        utc_now(now, sizeof now);
        s = call_tool(reply, show, said_seq, "clock", "{\"timezone\":\"UTC\"}", now);
        sb_printf(&answer, "It is %s (UTC).", now);
    } else if (previous.len == 0) {
        sb_puts(&answer, "Hello! Ask me to compute something (\"what is 6*7?\") or for the time. I remember what "
                         "you say.");
    } else {
        sb_printf(&answer, "You said \"%s\". Before that you said \"%s\" (%d messages from you so far).",
                  sb_str(&said), sb_str(&previous), user_turns);
    }
    free(lower);
    if (s == CONVSTATE_OK) s = convstate_reply_set_content(reply, sb_str(&answer));
    if (s != CONVSTATE_OK) {
        char *why = xstrdup(convstate_last_error()); /* borrowed until the next convstate call */
        s = fail_agent(reply, why);
        free(why);
    }

done:
    free(expression);
    sb_free(&said);
    sb_free(&previous);
    sb_free(&role);
    sb_free(&text);
    sb_free(&answer);
    return s;
}

/* ---- the program ------------------------------------------------------------------------------ */

typedef struct {
    const char *db_url;
    const char *user;
    char *conversation; /* malloc'd; NULL until known */
} chat_state;

static const char usage_text[] =
    "usage: chat [--db URL] [--user ID] [--conversation ID] [--message TEXT]...\n"
    "  --db URL            database (default sqlite3://convstate-demo.db)\n"
    "  --user ID           the user chatting (default alice)\n"
    "  --conversation ID   continue this conversation (default: start a new one)\n"
    "  --message TEXT      send TEXT (repeatable); without it, chat on standard input\n"
    "  --help              print this help\n";

/* A bad command line: what is wrong, then the usage, on stderr; exit status 2. */
static int usage_error(const char *what, const char *arg) {
    fprintf(stderr, "chat: %s %s\n%s", what, arg, usage_text);
    return 2;
}

/* Exit status for a failed call: 3 for NOT_FOUND, else 1. */
static int report(const char *what, convstate_status s) {
    fprintf(stderr, "chat: %s: %s (%s)\n", what, convstate_last_error(), convstate_status_name(s));
    return s == CONVSTATE_NOT_FOUND ? 3 : 1;
}

/* A title: the first 60 bytes of text, cut at a UTF-8 character boundary. */
static char *make_title(const char *text) {
    size_t n = strlen(text);
    char *title;
    if (n > 60) {
        n = 60;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) --n;
    }
    title = xrealloc(NULL, n + 1);
    memcpy(title, text, n);
    title[n] = '\0';
    return title;
}

/* One turn; prints it. 0 on success, else an exit status. */
static int run_turn(convstate_db *db, chat_state *st, const char *text) {
    convstate_turn_options options = CONVSTATE_TURN_OPTIONS_INIT;
    agent_display show = {{0}, {0}};
    char *out = NULL, *title = make_title(text);
    sbuf id = {0}, reply = {0};
    convstate_status s;
    int status = 0;

    options.conversation_id = st->conversation;
    options.title = title;
    s = convstate_turn(db, st->user, text, &options, demo_agent, &show, &out);
    if (s != CONVSTATE_OK) {
        status = report("turn", s);
        goto done;
    }
    if (!json_member_string(out, "conversation_id", &id) || !json_member_string(out, "reply", &reply)) {
        fprintf(stderr, "chat: unexpected turn result: %s\n", out);
        status = 1;
        goto done;
    }
    if (!st->conversation) {
        st->conversation = xstrdup(sb_str(&id));
        printf("conversation: %s (new; continue it with --conversation %s)\n", st->conversation, st->conversation);
    }
    printf("%s> %s\n", st->user, text);
    if (show.tool_call.len) printf("  %s\n  %s\n", sb_str(&show.tool_call), sb_str(&show.tool_result));
    printf("assistant> %s\n", sb_str(&reply));

done:
    convstate_free(out);
    free(title);
    sb_free(&id);
    sb_free(&reply);
    sb_free(&show.tool_call);
    sb_free(&show.tool_result);
    return status;
}

/* "/history": the stored conversation, one line per message. */
static int print_history(convstate_db *db, const chat_state *st) {
    char *out = NULL;
    const char *cursor, *element;
    int ok = 1;
    convstate_status s;
    if (!st->conversation) {
        puts("(no conversation yet)");
        return 0;
    }
    s = convstate_message_load_all(db, st->user, st->conversation, &out);
    if (s != CONVSTATE_OK) return report("history", s);
    cursor = out;
    while ((element = json_next(&cursor, &ok)) != NULL) {
        sbuf role = {0}, content = {0};
        const char *calls = json_member(element, "tool_calls");
        json_member_string(element, "role", &role);
        json_member_string(element, "content", &content);
        if (calls && *calls == '[') {
            const char *end = json_skip(calls, 1);
            printf("  #%lld %s: %.*s\n", json_member_int(element, "seq", 0), sb_str(&role),
                   end ? (int)(end - calls) : 0, calls);
        } else {
            printf("  #%lld %s: %s\n", json_member_int(element, "seq", 0), sb_str(&role), sb_str(&content));
        }
        sb_free(&role);
        sb_free(&content);
    }
    convstate_free(out);
    if (!ok) fputs("chat: malformed history\n", stderr);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    chat_state st = {"sqlite3://convstate-demo.db", "alice", NULL};
    const char **messages = NULL;
    size_t nmessages = 0, i;
    convstate_db *db = NULL;
    convstate_status s;
    int status = 0, a;

    messages = xrealloc(NULL, sizeof *messages * (size_t)argc);
    for (a = 1; a < argc; a += 2) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            free(messages);
            free(st.conversation);
            fputs(usage_text, stdout);
            return 0;
        }
        if (a + 1 >= argc) {
            free(messages);
            free(st.conversation);
            return usage_error("a value is missing after", argv[a]);
        }
        if (strcmp(argv[a], "--db") == 0) {
            st.db_url = argv[a + 1];
        } else if (strcmp(argv[a], "--user") == 0) {
            st.user = argv[a + 1];
        } else if (strcmp(argv[a], "--conversation") == 0) {
            free(st.conversation);
            st.conversation = xstrdup(argv[a + 1]);
        } else if (strcmp(argv[a], "--message") == 0) {
            messages[nmessages++] = argv[a + 1];
        } else {
            free(messages);
            free(st.conversation);
            return usage_error("unknown argument", argv[a]);
        }
    }

    s = convstate_db_open(st.db_url, NULL, &db);
    if (s != CONVSTATE_OK) {
        status = report("open", s);
        goto done;
    }
    if (st.conversation) {
        /* NOT_FOUND for a missing conversation or another user's. */
        char *out = NULL;
        s = convstate_conversation_get(db, st.user, st.conversation, &out);
        if (s != CONVSTATE_OK) {
            status = report("conversation", s);
            goto done;
        }
        printf("conversation: %s (%lld messages so far)\n", st.conversation, json_member_int(out, "last_seq", 0));
        convstate_free(out);
    }

    if (nmessages > 0) {
        for (i = 0; i < nmessages && status == 0; ++i) status = run_turn(db, &st, messages[i]);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        printf("chat on %s as %s: type a message, /history, or /quit\n", st.db_url, st.user);
        for (;;) {
            printf("%s> ", st.user);
            fflush(stdout);
            n = getline(&line, &cap, stdin);
            if (n < 0) break;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
            if (strcmp(line, "/quit") == 0) break;
            if (line[0] == '\0') continue;
            if (strcmp(line, "/history") == 0) {
                print_history(db, &st);
                continue;
            }
            if (run_turn(db, &st, line) == 3) { /* the conversation is gone: stop */
                status = 3;
                break;
            }
        }
        free(line);
        puts("");
    }

done:
    convstate_db_close(db);
    free(st.conversation);
    free(messages);
    return status;
}
