'use strict';

// Alarms for every function and the stage's dashboard, added to the template
// when it is packaged, from the functions serverless.yml has then: a new
// function gets its alarms and its place on the dashboard without an edit
// here. The stage-wide alarms (dead letters, queue age, the undelivered
// backlog, the HTTP API's 5xx rate, auth and database unavailable) and the
// alarm topic are in serverless.yml; thresholds in `custom.monitoring`.
//
// Per function, each notifying AlarmTopic in ALARM and back to OK:
//   <Function>ErrorRateAlarm  Lambda's Errors / Invocations above errorRatePercent
//   <Function>ThrottlesAlarm  Throttles above `throttles` a minute
//   <Function>DurationAlarm   the longest invocation above durationPercent of its timeout
// each breaching in `datapoints` of the last `periods` minutes.

const WIDTH = 24;

class Monitoring {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      // After serverless.yml's own resources are in, before the template is saved.
      'after:aws:package:finalize:mergeCustomProviderResources': () => this.addToTemplate(),
    };
  }

  config() {
    const service = this.serverless.service;
    const settings = (service.custom && service.custom.monitoring) || {};
    const number = (name) => {
      const value = Number(settings[name]);
      if (!Number.isFinite(value) || value < 0) {
        throw new this.serverless.classes.Error(
          `custom.monitoring.${name} (${settings[name]}) must be a number of at least 0`,
          'MONITORING_CONFIG'
        );
      }
      return value;
    };
    return {
      namespace: settings.namespace,
      datapoints: number('datapoints'),
      periods: number('periods'),
      errorRatePercent: number('errorRatePercent'),
      throttles: number('throttles'),
      durationPercent: number('durationPercent'),
      backlogAgeSeconds: number('backlogAgeSeconds'),
      queueAgeSeconds: number('queueAgeSeconds'),
      stage: this.serverless.service.provider.stage,
      service: service.service,
    };
  }

  functions() {
    const service = this.serverless.service;
    const naming = this.serverless.getProvider('aws').naming;
    return service.getAllFunctions().map((name) => {
      const fn = service.getFunction(name);
      return {
        name,
        logicalId: naming.getLambdaLogicalId(name),
        timeout: Number(fn.timeout || service.provider.timeout || 6),
      };
    });
  }

  addToTemplate() {
    const config = this.config();
    if (config.datapoints < 1 || config.datapoints > config.periods) {
      throw new this.serverless.classes.Error(
        'custom.monitoring: datapoints must be between 1 and periods',
        'MONITORING_CONFIG'
      );
    }
    const template = this.serverless.service.provider.compiledCloudFormationTemplate;
    const functions = this.functions();
    for (const fn of functions) Object.assign(template.Resources, functionAlarms(fn, config));
    template.Resources.OperationsDashboard = dashboard(functions, template.Resources, config);
    template.Outputs = template.Outputs || {};
    template.Outputs.OperationsDashboardUrl = {
      Description: 'The stage\'s CloudWatch dashboard',
      Value: {
        'Fn::Sub':
          'https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${OperationsDashboard}',
      },
    };
  }
}

function alarm(properties) {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: 'AlarmTopic' }],
      OKActions: [{ Ref: 'AlarmTopic' }],
      ...properties,
    },
  };
}

function lambdaMetric(fn, metricName, stat) {
  return {
    Metric: {
      Namespace: 'AWS/Lambda',
      MetricName: metricName,
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.logicalId } }],
    },
    Period: 60,
    Stat: stat,
  };
}

function functionAlarms(fn, config) {
  const base = fn.logicalId.replace(/LambdaFunction$/, '');
  const name = (what) => `${config.service}-${config.stage}-${fn.name}-${what}`;
  const window = { EvaluationPeriods: config.periods, DatapointsToAlarm: config.datapoints };
  const limitMs = Math.round((fn.timeout * 1000 * config.durationPercent) / 100);
  return {
    [`${base}ErrorRateAlarm`]: alarm({
      AlarmName: name('error-rate'),
      AlarmDescription: `${fn.name}: more than ${config.errorRatePercent} % of invocations failed (docs/runbook.md#function-error-rate)`,
      Metrics: [
        {
          Id: 'rate',
          Label: 'errors (% of invocations)',
          Expression: 'IF(invocations > 0, 100 * errors / invocations, 0)',
          ReturnData: true,
        },
        { Id: 'errors', ReturnData: false, MetricStat: lambdaMetric(fn, 'Errors', 'Sum') },
        { Id: 'invocations', ReturnData: false, MetricStat: lambdaMetric(fn, 'Invocations', 'Sum') },
      ],
      Threshold: config.errorRatePercent,
      ComparisonOperator: 'GreaterThanThreshold',
      ...window,
    }),
    [`${base}ThrottlesAlarm`]: alarm({
      AlarmName: name('throttles'),
      AlarmDescription: `${fn.name}: invocations throttled (docs/runbook.md#function-throttles)`,
      Namespace: 'AWS/Lambda',
      MetricName: 'Throttles',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.logicalId } }],
      Statistic: 'Sum',
      Period: 60,
      Threshold: config.throttles,
      ComparisonOperator: 'GreaterThanThreshold',
      ...window,
    }),
    [`${base}DurationAlarm`]: alarm({
      AlarmName: name('duration'),
      AlarmDescription: `${fn.name}: an invocation ran past ${config.durationPercent} % of its ${fn.timeout} s timeout (docs/runbook.md#function-duration)`,
      Namespace: 'AWS/Lambda',
      MetricName: 'Duration',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.logicalId } }],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: limitMs,
      ComparisonOperator: 'GreaterThanThreshold',
      ...window,
    }),
  };
}

// The dashboard: one page, top to bottom: alarms; requests, errors and
// latency per function; Lambda's own view per function; the bot pipeline
// (flow, model latency, provider errors); the queue; the undelivered
// backlog; auth and the database. Our metrics are found by SEARCH on the
// stage, so a new function's lines appear without a change; Lambda's are
// listed per function. Function names, queue names, the API id and alarm
// ARNs are filled in by CloudFormation (Fn::Sub).
function dashboard(functions, resources, config) {
  const ns = config.namespace;
  const stage = config.stage;
  const search = (metric, stat, label) => ({
    expression: `SEARCH('{${ns},function,stage} stage="${stage}" MetricName="${metric}"', '${stat}', 60)`,
    label: label || metric,
  });
  const ours = (fn, metric, extra) => [ns, metric, 'function', fn, 'stage', stage, extra || {}];
  const perFunction = (metric, stat) =>
    functions.map((fn) => ['AWS/Lambda', metric, 'FunctionName', `\${${fn.logicalId}}`, { stat, label: fn.name }]);
  const alarms = Object.keys(resources)
    .filter((id) => resources[id].Type === 'AWS::CloudWatch::Alarm')
    .sort()
    .map((id) => `\${${id}.Arn}`);
  const timeouts = [...new Set(functions.map((fn) => fn.timeout))].sort((a, b) => a - b);

  const rows = [
    [
      text(
        `# ${config.service} (${stage})\n` +
          'Alarms below notify the SNS topic `' + `${config.service}-${stage}-alarms` + '`. ' +
          'What each means and what to do: docs/runbook.md in the repository. ' +
          'Logs: CloudWatch Logs Insights on `/aws/lambda/' + `${config.service}-${stage}-*` + '`.',
        3
      ),
    ],
    [{ type: 'alarm', width: WIDTH, height: 4, properties: { title: 'Alarms', alarms } }],
    [
      metrics('Requests per function', [[search('Requests', 'Sum')]]),
      metrics('5xx and 4xx per function', [
        [search('Requests5xx', 'Sum', '5xx')],
        [search('Requests4xx', 'Sum', '4xx')],
      ]),
      metrics('Latency per function, p50 and p99 (ms)', [
        [search('Latency', 'p50', 'p50')],
        [search('Latency', 'p99', 'p99')],
      ]),
    ],
    [
      metrics('Lambda errors per function', perFunction('Errors', 'Sum')),
      metrics('Lambda throttles per function', perFunction('Throttles', 'Sum')),
      metrics('Longest invocation per function (ms)', perFunction('Duration', 'Maximum'), {
        annotations: {
          horizontal: timeouts.map((seconds) => ({ label: `${seconds} s timeout`, value: seconds * 1000 })),
        },
      }),
    ],
    [
      metrics('HTTP API (API Gateway)', [
        ['AWS/ApiGateway', 'Count', 'ApiId', '${HttpApi}', { stat: 'Sum', label: 'requests' }],
        ['AWS/ApiGateway', '4xx', 'ApiId', '${HttpApi}', { stat: 'Sum', label: '4xx' }],
        ['AWS/ApiGateway', '5xx', 'ApiId', '${HttpApi}', { stat: 'Sum', label: '5xx' }],
      ]),
      metrics('Cold starts per function', [[search('ColdStart', 'Sum')]]),
      metrics('Auth and database', [
        [search('AuthUnavailable', 'Sum', 'auth_unavailable')],
        [search('DatabaseUnavailable', 'Sum', 'database_unavailable')],
        [search('JwksFetchFailures', 'Sum', 'JWKS fetch failures')],
        [search('TokenRefreshFailures', 'Sum', 'token refresh failures')],
        [search('TokenRefreshes', 'Sum', 'token refreshes')],
      ]),
    ],
    [
      metrics('Bot pipeline: webhooks to jobs', [
        ours('bot-trigger', 'WebhooksReceived', { label: 'webhooks received' }),
        ours('bot-trigger', 'JobsQueued', { label: 'jobs queued' }),
        ours('bot-trigger', 'RecordsSkipped', { label: 'webhooks skipped' }),
      ]),
      metrics('Bot pipeline: jobs', [
        ours('bot-worker', 'JobsAnswered', { label: 'answered' }),
        ours('bot-worker', 'JobsRetried', { label: 'retried' }),
        ours('bot-worker', 'JobsFailed', { label: 'failed' }),
        ours('bot-worker', 'JobsAlreadyAnswered', { label: 'already answered' }),
        ours('bot-worker', 'BudgetRefusals', { label: 'over budget' }),
        ours('bot-worker', 'ReplyIdConflicts', { label: 'reply id taken' }),
        ours('bot-worker', 'JobsUnreadable', { label: 'unreadable' }),
      ]),
      metrics('Model: time to first token and reply (ms)', [
        ours('bot-worker', 'TimeToFirstToken', { stat: 'p50', label: 'first token p50' }),
        ours('bot-worker', 'TimeToFirstToken', { stat: 'p99', label: 'first token p99' }),
        ours('bot-worker', 'ReplyDuration', { stat: 'p50', label: 'reply p50' }),
        ours('bot-worker', 'ReplyDuration', { stat: 'p99', label: 'reply p99' }),
      ]),
    ],
    [
      metrics('Model provider errors', [
        ours('bot-worker', 'ProviderRateLimited', { label: '429' }),
        ours('bot-worker', 'ProviderErrors4xx', { label: 'other 4xx' }),
        ours('bot-worker', 'ProviderErrors5xx', { label: '5xx' }),
        ours('bot-worker', 'ProviderTimeouts', { label: 'timeouts' }),
        ours('bot-worker', 'ProviderStreamErrors', { label: 'unreachable, cut short' }),
      ]),
      metrics('Job queue: depth', [
        ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', '${BotQueue.QueueName}', { stat: 'Maximum', label: 'waiting' }],
        ['AWS/SQS', 'ApproximateNumberOfMessagesNotVisible', 'QueueName', '${BotQueue.QueueName}', { stat: 'Maximum', label: 'in flight or delayed' }],
        ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', '${BotDeadLetterQueue.QueueName}', { stat: 'Maximum', label: 'dead letters' }],
      ]),
      metrics('Job queue: oldest job (s)', [
        ['AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', '${BotQueue.QueueName}', { stat: 'Maximum', label: 'oldest job' }],
      ], { annotations: { horizontal: [{ label: 'alarm', value: config.queueAgeSeconds }] } }),
    ],
    [
      metrics('Undelivered utterances (not acknowledged by bot-trigger)', [
        ours('bot-trigger', 'UndeliveredUtterances', { stat: 'Maximum', label: 'waiting' }),
        ours('bot-trigger', 'DeliveriesFailed', { stat: 'Maximum', label: 'given up, last hour' }),
        ours('bot-trigger', 'DeliveriesUnreadable', { stat: 'Maximum', label: 'set aside, last hour' }),
      ]),
      metrics('Oldest undelivered utterance (s)', [
        ours('bot-trigger', 'OldestUndeliveredAge', { stat: 'Maximum', label: 'oldest' }),
      ], { annotations: { horizontal: [{ label: 'alarm', value: config.backlogAgeSeconds }] } }),
    ],
  ];

  const widgets = [];
  let y = 0;
  for (const row of rows) {
    const width = Math.floor(WIDTH / row.length);
    row.forEach((widget, index) => {
      widgets.push({ ...widget, x: index * width, y, width: widget.width || width });
    });
    y += Math.max(...row.map((widget) => widget.height));
  }
  return {
    Type: 'AWS::CloudWatch::Dashboard',
    Properties: {
      DashboardName: `${config.service}-${stage}`,
      DashboardBody: { 'Fn::Sub': JSON.stringify({ widgets }) },
    },
  };

  function metrics(title, series, extra) {
    return {
      type: 'metric',
      height: 6,
      properties: {
        title,
        region: '${AWS::Region}',
        view: 'timeSeries',
        stacked: false,
        stat: 'Sum',
        period: 60,
        metrics: series,
        ...(extra || {}),
      },
    };
  }

  function text(markdown, height) {
    return { type: 'text', width: WIDTH, height, properties: { markdown } };
  }
}

module.exports = Monitoring;
module.exports.functionAlarms = functionAlarms;
