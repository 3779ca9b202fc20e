/* peer-match-private.h: D-Bus match rules, as the bus driver's AddMatch
 * and RemoveMatch and the monitors' filters use them.
 *
 * The syntax and the matching are the D-Bus specification's ("Match
 * Rules"); see peer-match.c for the few places where it had to be read.
 * Errors are in G_DBUS_ERROR, as a bus answers them: MatchRuleInvalid,
 * MatchRuleNotFound and LimitsExceeded.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The longest rule text accepted, in bytes: dbus-daemon's limit, so a
 * rule one bus takes the other takes too. It also bounds every error
 * message that quotes the text. */
#define PEER_MATCH_RULE_MAX_LENGTH 1024

/* The highest N in argN, argNpath (the specification's bound). */
#define PEER_MATCH_RULE_MAX_ARG 63

/* One parsed rule. Immutable once parsed, so matching it from several
 * threads at once is safe. */
typedef struct _PeerMatchRule PeerMatchRule;

/* Parses @text. Returns (transfer full) the rule, or NULL with @error set:
 * G_DBUS_ERROR_MATCH_RULE_INVALID (one line naming the problem) or, for a
 * text longer than PEER_MATCH_RULE_MAX_LENGTH, G_DBUS_ERROR_LIMITS_EXCEEDED.
 * "" is a valid rule that matches every message. */
PeerMatchRule *_peer_match_rule_new           (const char          *text,
                                               GError             **error);
/* @rule: (nullable) */
void           _peer_match_rule_free          (PeerMatchRule       *rule);

/* Whether @message matches every key of @rule.
 *
 * @sender: (nullable) the sender's unique name as the router will stamp
 *   it; NULL uses the message's SENDER header. It replaces the header
 *   rather than adding to it, as a peer can write any SENDER it likes.
 * @destination: (nullable) the unique name of the connection the message
 *   is going to; NULL uses the DESTINATION header. A rule's destination
 *   key matches this or the DESTINATION header as sent (a well-known name).
 * @sender_names: (nullable) NULL-terminated well-known names the sender
 *   is the primary owner of: a rule's sender key matches @sender or any
 *   of these.
 *
 * The eavesdrop key is not applied here (see _peer_match_rule_get_eavesdrop()).
 * Reads the body only if @rule has argument keys; allocates nothing
 * otherwise. Any thread. */
gboolean       _peer_match_rule_matches       (const PeerMatchRule *rule,
                                               GDBusMessage        *message,
                                               const char          *sender,
                                               const char          *destination,
                                               const char * const  *sender_names);

/* Whether the rule said eavesdrop='true'. Recorded, never applied by the
 * matching above: the specification's "a rule without eavesdrop='true'
 * sees broadcasts only" is the caller's to apply, since monitors see
 * unicast messages whatever their rules say and the router consults
 * AddMatch rules for broadcasts only. */
gboolean       _peer_match_rule_get_eavesdrop (const PeerMatchRule *rule);

/* Whether @a and @b have the same keys with the same values, whatever the
 * order, quoting or whitespace of their texts (eavesdrop='false' equals
 * no eavesdrop key). RemoveMatch removes a rule equal to the one given. */
gboolean       _peer_match_rule_equal         (const PeerMatchRule *a,
                                               const PeerMatchRule *b);

/* (transfer full) The rule in one canonical form (keys in a fixed order,
 * every value quoted), which parses back to an equal rule. For debug
 * output and tests. */
char          *_peer_match_rule_to_string     (const PeerMatchRule *rule);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerMatchRule, _peer_match_rule_free)

/* One peer's rules: its AddMatch rules, or a monitor's filter. Duplicates
 * are kept and counted, as dbus-daemon does.
 *
 * Not locked: the caller holds its own lock around every call, matching
 * included (the router matches in GDBus's worker thread while the bus
 * driver adds and removes from the main context). */
typedef struct _PeerMatchSet PeerMatchSet;

PeerMatchSet  *_peer_match_set_new            (void);
/* @set: (nullable) */
void           _peer_match_set_free           (PeerMatchSet        *set);

/* Parses @text and adds it, unless @set holds @max_rules rules already
 * (G_DBUS_ERROR_LIMITS_EXCEEDED). The caller passes the limit on each
 * call so a changed server limit applies to the next AddMatch. Errors of
 * parsing as _peer_match_rule_new(). */
gboolean       _peer_match_set_add            (PeerMatchSet        *set,
                                               const char          *text,
                                               guint                max_rules,
                                               GError             **error);

/* Removes one rule equal to @text's. G_DBUS_ERROR_MATCH_RULE_NOT_FOUND if
 * there is none; errors of parsing as _peer_match_rule_new(). */
gboolean       _peer_match_set_remove         (PeerMatchSet        *set,
                                               const char          *text,
                                               GError             **error);

/* Whether any rule of @set matches @message; arguments as in
 * _peer_match_rule_matches(). The headers are read once for the whole
 * set, each body argument at most once. */
gboolean       _peer_match_set_matches        (PeerMatchSet        *set,
                                               GDBusMessage        *message,
                                               const char          *sender,
                                               const char          *destination,
                                               const char * const  *sender_names);

guint          _peer_match_set_get_n_rules    (PeerMatchSet        *set);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerMatchSet, _peer_match_set_free)

G_END_DECLS
