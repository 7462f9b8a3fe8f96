# Gyeongbo application image: the bridge, the workers and the CLI.
#
# Runs as uid/gid 10001 (gyeongbo). The folders the services write are created here with their
# owners, so a fresh named volume mounted on them starts with the same owner and mode (Docker
# copies them into an empty volume):
#   /var/lib/gyeongbo/worker     a worker's data (Faust, SMS sent log, CAP feed)    10001:10001 0750
#   /var/lib/gyeongbo/operators  operators' hashed API tokens                       10001:10001 0750
#   /auth                        mosquitto's password file and ACL (mqtt-auth)      10001:1883  2750
# gyeongbo is also in group 1883 (mosquitto's in the eclipse-mosquitto image): /auth is
# setgid, so what mqtt-auth writes there belongs to that group, which mosquitto reads through
# after dropping to its own user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY gyeongbo ./gyeongbo
COPY gyeongbo_cli ./gyeongbo_cli
COPY streams ./streams
COPY detectors ./detectors
COPY geo ./geo
COPY alerting ./alerting
COPY simulators ./simulators
COPY dashboards ./dashboards
COPY config ./config
RUN pip install --no-cache-dir . \
 && groupadd --system --gid 10001 gyeongbo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gyeongbo --no-create-home \
      --shell /usr/sbin/nologin gyeongbo \
 && groupadd --system --gid 1883 mosquitto \
 && usermod --append --groups mosquitto gyeongbo \
 && install -d -o 10001 -g 10001 -m 0750 \
      /var/lib/gyeongbo /var/lib/gyeongbo/worker /var/lib/gyeongbo/operators \
 && install -d -o 10001 -g 1883 -m 2750 /auth
USER gyeongbo
WORKDIR /var/lib/gyeongbo
ENTRYPOINT ["gyeongbo"]
CMD ["--help"]
