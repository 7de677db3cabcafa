/** Quotes an identifier always: table and column names can contain anything. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * A name as Postgres prints it (quote_ident, regclass): bare when it is a plain lower-case
 * identifier, quoted otherwise, so that `public."we""ird, name"` cannot be read as two tables.
 * For people and file names; SQL always uses quoteIdent.
 */
export function displayIdent(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : quoteIdent(name);
}

export function displayQualified(schema: string, name: string): string {
  return `${displayIdent(schema)}.${displayIdent(name)}`;
}

/**
 * A name Postgres wrote (quote_ident, regclass, pg_identify_object, pg_get_triggerdef's table)
 * with every identifier in it quoted: a key under which two writings of one name are equal,
 * whichever words the writer took for keywords. Postgres quotes a keyword (`public."order"`),
 * pgtape's displayQualified does not, and the servers differ (PG 17 quotes `json_table`, PG 14
 * does not). For comparing only: other words (`on`, argument types) are quoted too.
 */
export function nameKey(written: string): string {
  return written.replace(/"(?:[^"]|"")*"|[^\s."(),]+/g, (w) => (w.startsWith('"') ? w : quoteIdent(w)));
}

/** Where `find` stands in `text` outside quoted identifiers (and, in a statement, string literals), in order. */
export function outsideQuotes(text: string, find: string, statement = false): number[] {
  const at: number[] = [];
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) quote = c === quote ? undefined : quote;
    else if (c === '"' || (statement && c === "'")) quote = c;
    else if (text.startsWith(find, i)) at.push(i);
  }
  return at;
}

/** A name as quote_ident writes it, back to the name (a bare one as it is: Postgres folds no case there). */
export function unquoteIdent(quoted: string): string {
  return quoted.startsWith('"') && quoted.endsWith('"') ? quoted.slice(1, -1).replace(/""/g, '"') : quoted;
}

/** A string literal safe with standard_conforming_strings on or off. */
export function quoteLiteral(value: string): string {
  const escaped = value.replace(/'/g, "''");
  return value.includes('\\') ? ` E'${escaped.replace(/\\/g, '\\\\')}'`.trimStart() : `'${escaped}'`;
}

/** A DO block around plpgsql (a bare statement list is wrapped in begin … end), dollar-quoted with a tag its body does not hold. */
export function doBlock(body: string): string {
  const block = /^\s*declare\b/.test(body) ? body : `begin ${body} end`;
  let tag = '$pgtape$';
  for (let i = 1; block.includes(tag); i++) tag = `$pgtape${i}$`;
  return `do ${tag} ${block} ${tag};`;
}
