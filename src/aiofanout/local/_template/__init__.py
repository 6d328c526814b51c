"""``serve --template``: a SAM or CloudFormation template run on the local stack, without Docker.

``sam local`` runs functions in containers and needs Docker; this runs the same template on
the local runtime (real awslambdaric processes) and a moto server. It reads what a SAM
template for aiofanout holds, the documented subset in the README, and does what CloudFormation
and the SAM transform would do with it, in this order:

1. ``_yaml``: the file, with CloudFormation's short tags (``!Ref``, ``!GetAtt a.b``, ``!Sub``);
2. ``_document``: the checks that need no server: sections, ``Parameters`` (defaults and
   overrides), ``Conditions``, the SAM expansion (``_sam``: ``Globals``, each
   ``AWS::Serverless::Function`` into the CloudFormation resources SAM makes of it), each
   resource's type and properties against the subset (``strict`` refuses what falls outside),
   every reference, and the creation order (a reference cycle is refused);
3. ``_deploy``: each resource created in that order by its kind, its properties resolved
   (``_intrinsics``) against what was created before it: ``_moto_resources`` (queues,
   buckets, tables on the moto server), ``_lambdas`` (functions on the runtime),
   ``_triggers`` (event source mappings, event invoke configs, scheduled rules, which
   ``_schedules`` fires); then the ``Outputs``.

Only the properties the local stack honours are resolved, so a property it ignores (an IAM
policy document, say) may hold what it could never resolve. Each kind (``_kinds.Kind``) lists
what it honours and what it reads past, and why.
"""


# Nothing is imported here: the command line reads SUBSET for its help without loading the
# stack's dependencies. Template and DeployedTemplate are in ._deploy.

#: The subset ``serve --template`` runs, for ``serve --help`` (the README has it too).
SUBSET = """\
template subset (anything else is skipped with a warning, or refused with --strict):
  AWS::Serverless::Function   CodeUri (a directory or a zip, relative to the template),
                              InlineCode, Handler, Runtime (python3.x), Timeout, MemorySize,
                              Environment.Variables, ReservedConcurrentExecutions,
                              RecursiveLoop, FunctionName, EventInvokeConfig, Events of type
                              SQS (Queue, BatchSize, MaximumBatchingWindowInSeconds,
                              FunctionResponseTypes, ScalingConfig.MaximumConcurrency,
                              Enabled) and Schedule (Schedule, Input, Enabled, State, Name)
  Globals.Function            merged as SAM merges
  AWS::Lambda::Function       the same properties; Code a local directory or zip path, or
                              Code.ZipFile (inline source); no S3 code, no images
  AWS::Lambda::EventSourceMapping, AWS::Lambda::EventInvokeConfig (SQS destinations)
  AWS::Events::Rule           ScheduleExpression rate(...) or cron(...), Lambda targets
  AWS::SQS::Queue             QueueName, RedrivePolicy, VisibilityTimeout,
                              MessageRetentionPeriod, DelaySeconds, FifoQueue, ...
  AWS::S3::Bucket             BucketName, VersioningConfiguration
  AWS::DynamoDB::Table        KeySchema, AttributeDefinitions, BillingMode,
                              ProvisionedThroughput, indexes, StreamSpecification,
                              TimeToLiveSpecification
  IAM roles, policies, permissions: accepted, not enforced locally
  Parameters (Default, or --parameter KEY=VALUE), Conditions, Mappings, Outputs
  Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Base64,
  Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or; YAML short tags (!Ref, !GetAtt, !Sub, ...)
functions run isolated, as AWS runs their package: their code and the Lambda runtime's own
schedules fire at their rate: the first rate(N ...) fire is N after serve starts
"""
