// The one place that decides what a secret looks like in text we log or report. It hides
// secrets and nothing else: a redactor that eats ordinary words ("unknown format" -> "***
// format") hides the diagnosis an operator needs, so every rule below is anchored on a shape
// that only secrets have.

const MASK = '***';

// scheme://user:password@host — the password may hold characters its author forgot to
// percent-encode (an `@`, a space). Within one whitespace-free token the LAST `@` that is
// followed by a host ends the userinfo (what URL parsers do); when the token has none, the
// password held a space and the first `@host` later on the line ends it.
const HOST_END = String.raw`@(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d*)?(?=[/?#\s"'),;\]}]|$)`;
const URL_PASSWORD = new RegExp(
  String.raw`(\b[a-z][a-z0-9+.-]*://[^\s:/?#@"']*:)` + String.raw`([^\s/?#]*(?=${HOST_END})|(?!\d+(?:\s|$))[^\n/?#@]*?(?=${HOST_END}))`,
  'gi',
);

// A key that names a secret: the whole key ends with one of these words (PGPASSWORD,
// db_password, secretAccessKey, "api_key"), so "tokenizer", "tokens" or "password_file" do not.
const SECRET_KEY = /(?:password|passwd|pwd|secret|token|passphrase|credentials?|api_?key|access_?key|secret_?access_?key|private_?key)$/i;
const KEY = String.raw`[A-Za-z_][A-Za-z0-9_.-]*`;
const QUOTED = String.raw`"(?:[^"\\\n]|\\.)*"|'[^'\n]*'`;

// key=value (an assignment: conninfo strings, environment dumps, query strings).
const ASSIGNMENT = new RegExp(String.raw`(?<![A-Za-z0-9_.-])(${KEY})(\s*=\s*)(${QUOTED}|[^\s&]+)`, 'g');
// "key": "value" and key: "value" (JSON, YAML with a quoted value).
const QUOTED_PAIR = new RegExp(String.raw`(?<![A-Za-z0-9_.-])("?)(${KEY})\1(\s*:\s*)(${QUOTED})`, 'g');
// key: value, unquoted. "password: unknown format" is a message prefix, not a secret, so this
// takes only a value that is the last word of its line or list item (YAML's `password: x`),
// or any value after an identifier no sentence starts with (PGPASSWORD:, db_password:).
const COLON_PAIR = new RegExp(String.raw`(?<![A-Za-z0-9_.-])(${KEY})(:[ \t]*)([^\s"',;]+)`, 'g');

const PGP_PRIVATE_BLOCK = /-----BEGIN PGP PRIVATE KEY BLOCK-----[\s\S]*?(?:-----END PGP PRIVATE KEY BLOCK-----|$)/g;
const BEARER = /\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/g;

/** Hides passwords in URLs, secret key=value pairs, bearer tokens and private key blocks. */
export function redact(text: string): string {
  return text
    .replace(PGP_PRIVATE_BLOCK, `-----BEGIN PGP PRIVATE KEY BLOCK----- ${MASK}`)
    .replace(URL_PASSWORD, `$1${MASK}`)
    .replace(ASSIGNMENT, (whole, key: string, sep: string) => (SECRET_KEY.test(key) ? `${key}${sep}${MASK}` : whole))
    .replace(QUOTED_PAIR, (whole, quote: string, key: string, sep: string) => (SECRET_KEY.test(key) ? `${quote}${key}${quote}${sep}${MASK}` : whole))
    .replace(COLON_PAIR, (whole, key: string, sep: string, value: string, offset: number, all: string) => {
      if (!SECRET_KEY.test(key) || value === MASK) return whole;
      const rest = all.slice(offset + whole.length);
      const lastWord = /^[ \t]*(?:$|[\n,;}\]])/.test(rest);
      const identifier = key.includes('_') || /[A-Z]/.test(key.slice(1));
      return lastWord || identifier ? `${key}${sep}${MASK}` : whole;
    })
    .replace(BEARER, `$1$2${MASK}`);
}

/**
 * Hides the whole userinfo (user and password) of every URL in a value we are about to show,
 * taking everything up to the string's last `@` so that no unencoded character of a password
 * can end it early. For values whose bounds we know (a configuration field), not free text.
 */
export function redactUrlUserinfo(value: string): string {
  return value.replace(/^(\s*[a-z][a-z0-9+.-]*:\/\/)([^]*)@/i, (whole, scheme: string, userinfo: string) => (userinfo.length ? `${scheme}${MASK}@` : whole));
}

/** pino redaction paths for the same secrets, wherever they appear in a log object. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'secretAccessKey',
  '*.secretAccessKey',
  'env.PGPASSWORD',
  'env.AWS_SECRET_ACCESS_KEY',
  'databaseUrl',
  '*.databaseUrl',
];
