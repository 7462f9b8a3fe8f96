# Gyeongbo application image: the bridge, the workers and the CLI.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gyeongbo ./gyeongbo
COPY streams ./streams
COPY detectors ./detectors
COPY geo ./geo
COPY alerting ./alerting
COPY simulators ./simulators
COPY dashboards ./dashboards
COPY config ./config
RUN pip install --no-cache-dir . && useradd --system --uid 10001 gyeongbo
USER gyeongbo
ENTRYPOINT ["gyeongbo"]
CMD ["--help"]
