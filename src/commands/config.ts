import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { UserError, errorMessage } from '../core/errors.js';
import { redactUrl } from '../core/log.js';

// Every option can come from a flag, a PGTAPE_* environment variable, or a JSON config file
// (--config), in that order of precedence, then its default. Kubernetes passes the source URL as a
// secret in PGTAPE_SOURCE and the rest as a ConfigMap.

/** `--max-idle-wal` → PGTAPE_MAX_IDLE_WAL. */
export function envName(option: Option): string {
  return `PGTAPE_${option
    .attributeName()
    .replace(/[A-Z]/g, (c) => `_${c}`)
    .toUpperCase()}`;
}

/** Gives every option of the command (and its subcommands) an environment variable, and --config. */
export function configurable(command: Command): Command {
  for (const c of [command, ...command.commands]) {
    if (c !== command || command.commands.length === 0) {
      for (const o of c.options) if (!o.envVar && o.long !== '--config' && o.long !== '--help' && o.long !== '--version') addEnv(c, o);
      if (!c.options.some((o) => o.long === '--config'))
        c.addOption(
          new Option(
            '--config <file>',
            'a JSON file of options ({"store": "./tape", "segment-seconds": 30}); flags and PGTAPE_* variables win',
          ).env('PGTAPE_CONFIG'),
        );
      c.hook('preAction', (_this, action) => {
        applyConfigFile(action);
        refuseEmpty(action);
      });
    }
  }
  return command;
}

/**
 * commander wires an option's environment variable when the option is added; options made
 * without one get it here, with the same precedence (after flags, before defaults).
 */
function addEnv(command: Command, option: Option): void {
  option.env(envName(option));
  command.on(`optionEnv:${option.name()}`, (val?: string) => {
    const name = option.attributeName();
    let v: unknown;
    if (option.required || option.optional) v = option.parseArg ? option.parseArg(val!, command.getOptionValue(name)) : val;
    else v = !/^(false|0|no|off)?$/i.test(process.env[option.envVar!] ?? '');
    command.setOptionValueWithSource(name, v, 'env');
  });
}

/**
 * An option given an empty value (`--into=`, `PGTAPE_PGDATA=` left in the environment) is a
 * mistake, not a value: said with where it came from, before it reaches code that takes it for a path.
 */
function refuseEmpty(command: Command): void {
  for (const o of command.options) {
    const name = o.attributeName();
    if (!o.required || command.getOptionValue(name) !== '') continue;
    const source = command.getOptionValueSource(name);
    if (source === 'env')
      throw new UserError(
        `${o.long} is empty (the environment variable ${o.envVar} is set to nothing)`,
        `give ${o.envVar} a value, or unset it`,
      );
    throw new UserError(
      `${o.long} is empty${source === 'config' ? ' (in the config file)' : ''}`,
      `give ${o.long} a value, or leave it out`,
    );
  }
}

function applyConfigFile(command: Command): void {
  const file = command.getOptionValue('config') as string | undefined;
  if (!file) return;
  let values: Record<string, unknown>;
  try {
    values = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    if (!values || typeof values !== 'object' || Array.isArray(values)) throw new Error('not a JSON object');
  } catch (err) {
    throw new UserError(
      `--config ${file}: ${errorMessage(err)}`,
      'give a JSON object of option names and values, e.g. {"store": "./tape", "segment-seconds": 30}',
    );
  }
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const option = command.options.find((o) => o.long === `--${key}` || o.attributeName() === key);
    if (!option || option.long === '--config') {
      unknown.push(key);
      continue;
    }
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    // Flags and environment variables win.
    if (source === 'cli' || source === 'env') continue;
    let v: unknown = value;
    if (option.parseArg && typeof value === 'string') v = option.parseArg(value, command.getOptionValue(name));
    else if (typeof value === 'number') v = String(value);
    command.setOptionValueWithSource(name, v, 'config');
  }
  if (unknown.length) {
    throw new UserError(
      `--config ${file}: unknown options ${unknown.join(', ')} for pgtape ${command.name()}`,
      `pgtape ${command.name()} --help lists them`,
    );
  }
}

const SECRET = /pass|secret|token|key/i;

/** The resolved options of a command, secrets masked, with where each value came from. */
export function resolvedConfig(command: Command): Record<string, { value: unknown; from: string }> {
  const out: Record<string, { value: unknown; from: string }> = {};
  for (const o of command.options) {
    const name = o.attributeName();
    if (name === 'printConfig' || name === 'help') continue;
    let value = command.getOptionValue(name) as unknown;
    if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) value = redactUrl(value);
    else if (SECRET.test(name) && value !== undefined) value = '***';
    if (value instanceof Set) value = [...value];
    out[o.long!.slice(2)] = { value: value ?? null, from: command.getOptionValueSource(name) ?? 'unset' };
  }
  return out;
}
