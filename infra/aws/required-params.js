'use strict';

// Stage params that have no safe default: `${required:<name>}` in serverless.yml.
//
// `sls deploy` stops, naming every missing or malformed one, while the
// configuration resolves: before the first lifecycle hook, so before any AWS
// call. `sls package` (offline inspection) builds with a visible placeholder
// and says so; `sls deploy --package <dir>` refuses a package built that way.

const fs = require('fs');
const path = require('path');

const PLACEHOLDER_PREFIX = '<missing --param=';
const placeholder = (name) => `${PLACEHOLDER_PREFIX}${name}>`;

const CHECKS = {
  supabaseUrl: {
    example: 'https://<ref>.supabase.co',
    valid: (value) => /^https:\/\/[^/\s]+\/?$/.test(value),
    rule: 'an https URL with no path',
  },
  allowedOrigins: {
    example: 'https://app.example.com',
    valid: (value) => value.split(',').every((origin) => /^https?:\/\/[^/\s]+$/.test(origin.trim())),
    rule: 'comma-separated origins, scheme and host only (no path, no trailing slash)',
  },
};

class RequiredParams {
  constructor(serverless, options, { log }) {
    const command = (serverless.processedInput.commands || []).join(' ');
    // `check-params` checks as deploy would: make deploy runs it before building.
    const deploying = command === 'deploy' || command.startsWith('deploy ') || command === 'check-params';
    const warned = new Set();
    const fail = (message) => {
      throw new serverless.classes.Error(message, 'REQUIRED_PARAM');
    };

    if (deploying && options.package) {
      const template = path.join(
        path.resolve(serverless.serviceDir || '.', options.package),
        'cloudformation-template-update-stack.json'
      );
      if (fs.existsSync(template) && fs.readFileSync(template, 'utf8').includes(PLACEHOLDER_PREFIX)) {
        fail(
          `${options.package} was packaged without its required params (it holds placeholders):` +
            ' package again with them, e.g. make deploy PARAMS="--param=supabaseUrl=... --param=allowedOrigins=..."'
        );
      }
    }

    this.commands = {
      'check-params': {
        usage: 'Checks the required params as `deploy` would, offline',
        lifecycleEvents: ['check'],
      },
    };
    this.hooks = {
      'check-params:check': () => log.notice(`required params present: ${Object.keys(CHECKS).join(', ')}`),
    };

    this.configurationVariablesSources = {
      required: {
        async resolve({ address, resolveVariable }) {
          const check = CHECKS[address];
          if (!check) fail(`\${required:${address}}: no such required param (known: ${Object.keys(CHECKS).join(', ')})`);
          let value = null;
          try {
            value = await resolveVariable(`param:${address}`);
          } catch (error) {
            value = null; // not given: decided below
          }
          if (value != null && String(value).trim() !== '') {
            value = String(value).trim();
            if (!check.valid(value)) fail(`param ${address}="${value}" is not ${check.rule}, e.g. ${check.example}`);
            return { value };
          }
          if (deploying) {
            fail(
              `missing required param ${address}: deploy with --param="${address}=${check.example}"` +
                ` (with make: make deploy PARAMS="--param=${address}=...")`
            );
          }
          if (command === 'package' && !warned.has(address)) {
            warned.add(address);
            log.warning(
              `param ${address} not given: packaged with the placeholder "${placeholder(address)}",` +
                ' for inspection only (sls deploy refuses it)'
            );
          }
          return { value: placeholder(address) };
        },
      },
    };
  }
}

module.exports = RequiredParams;
