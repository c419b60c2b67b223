'use strict';

// `sls invoke local -e NAME=value`: a value given on the command line wins
// over the template's, as it does anyway once the function runs. For an
// environment variable the template sets with a CloudFormation intrinsic
// (e.g. BOT_QUEUE_URL: !Ref BotQueue), invoke local would otherwise first
// look the deployed stack up in AWS (credentials, network) only to replace
// the answer with the `-e` value: `make invoke` runs offline.

class InvokeLocalEnv {
  constructor(serverless, options) {
    this.hooks = {
      initialize: () => {
        const command = (serverless.processedInput.commands || []).join(' ');
        if (command !== 'invoke local' || !options.function) return;
        const given = new Set([].concat(options.env || []).map((pair) => String(pair).split('=')[0]));
        const fn = (serverless.service.functions || {})[options.function];
        const environment = (fn && fn.environment) || {};
        for (const [name, value] of Object.entries(environment)) {
          if (given.has(name) && value !== null && typeof value === 'object') delete environment[name];
        }
      },
    };
  }
}

module.exports = InvokeLocalEnv;
