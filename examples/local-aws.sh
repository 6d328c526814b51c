#!/usr/bin/env bash
# A walkthrough of the local AWS with the AWS CLI, end to end, against `serve`:
# create a function from a zip, reserve concurrency, configure an on-failure destination,
# invoke it every way, map an SQS queue to it, and read its logs.
#
#   python -m aiofanout serve --port 9001 --moto-port 9002 &     # in another terminal
#   LAMBDA=http://127.0.0.1:9001 MOTO=http://127.0.0.1:9002 examples/local-aws.sh
#
# Works with the AWS CLI v1 (`pip install awscli`) and v2: payloads go as fileb://, which
# both send as given (an inline --payload needs --cli-binary-format raw-in-base64-out on v2).
set -euo pipefail

LAMBDA=${LAMBDA:?set LAMBDA to the local Lambda endpoint serve printed}
MOTO=${MOTO:?set MOTO to the moto server endpoint serve printed}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_PAGER=""
lambda() { aws --endpoint-url "$LAMBDA" lambda "$@"; }
sqs() { aws --endpoint-url "$MOTO" sqs "$@"; }
FUNCTION=${FUNCTION:-walkthrough}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== 1. a function from a zip"
cat > "$WORK/handler.py" <<'PY'
def handler(event, context):
    print(f"got {event!r}")
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("asked to fail")
    return {"records": len(event.get("Records", [])) if isinstance(event, dict) else 0}
PY
(cd "$WORK" && python3 -m zipfile -c function.zip handler.py)
lambda create-function --function-name "$FUNCTION" --runtime python3.11 \
  --role arn:aws:iam::123456789012:role/local --handler handler.handler \
  --zip-file "fileb://$WORK/function.zip" --timeout 10 \
  --query '{Name: FunctionName, State: State, Sha: CodeSha256}'

echo "== 2. reserve concurrency"
lambda put-function-concurrency --function-name "$FUNCTION" --reserved-concurrent-executions 2
lambda get-function-concurrency --function-name "$FUNCTION"

echo "== 3. an on-failure destination for Event invokes"
FAILURES=$(sqs create-queue --queue-name "$FUNCTION-failures" --query QueueUrl --output text)
FAILURES_ARN=$(sqs get-queue-attributes --queue-url "$FAILURES" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)
lambda put-function-event-invoke-config --function-name "$FUNCTION" --maximum-retry-attempts 0 \
  --destination-config "{\"OnFailure\": {\"Destination\": \"$FAILURES_ARN\"}}"

echo "== 4. invoke: RequestResponse (with its log), Event, DryRun"
echo '{"hello": "local"}' > "$WORK/event.json"
LOG=$(lambda invoke --function-name "$FUNCTION" --payload "fileb://$WORK/event.json" \
  --log-type Tail --query LogResult --output text "$WORK/out.json")
echo "answer: $(cat "$WORK/out.json")"
echo "log:"; echo "$LOG" | base64 --decode
echo '{"fail": true}' > "$WORK/fail.json"
lambda invoke --function-name "$FUNCTION" --invocation-type Event \
  --payload "fileb://$WORK/fail.json" "$WORK/event-out.json" --query StatusCode
lambda invoke --function-name "$FUNCTION" --invocation-type DryRun \
  --payload "fileb://$WORK/event.json" "$WORK/dry-out.json" --query StatusCode
echo "the failed event's record on the on-failure queue:"
sqs receive-message --queue-url "$FAILURES" --wait-time-seconds 10 \
  --query 'Messages[0].Body' --output text
echo "a payload that is not JSON is refused (the CLI v1 exits 255, v2 254):"
echo 'not json' > "$WORK/bad.json"
lambda invoke --function-name "$FUNCTION" --payload "fileb://$WORK/bad.json" "$WORK/bad-out.json" \
  || echo "exit code $?"

echo "== 5. map an SQS queue to the function"
WORK_QUEUE=$(sqs create-queue --queue-name "$FUNCTION-work" --query QueueUrl --output text)
WORK_ARN=$(sqs get-queue-attributes --queue-url "$WORK_QUEUE" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)
MAPPING=$(lambda create-event-source-mapping --function-name "$FUNCTION" \
  --event-source-arn "$WORK_ARN" --batch-size 10 \
  --function-response-types ReportBatchItemFailures --query UUID --output text)
sqs send-message --queue-url "$WORK_QUEUE" --message-body '{"job": 1}' --query MessageId
for _ in $(seq 60); do
  LEFT=$(sqs get-queue-attributes --queue-url "$WORK_QUEUE" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'to_string(sum([to_number(Attributes.ApproximateNumberOfMessages), to_number(Attributes.ApproximateNumberOfMessagesNotVisible)]))' \
    --output text)
  [ "$LEFT" = "0" ] && break
  sleep 1
done
echo "messages left on the queue: $LEFT"
lambda get-event-source-mapping --uuid "$MAPPING" --query '{UUID: UUID, State: State}'

echo "== 6. clean up"
lambda delete-event-source-mapping --uuid "$MAPPING" --query State
lambda delete-function --function-name "$FUNCTION"
echo "walkthrough done"
