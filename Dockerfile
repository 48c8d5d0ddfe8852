# remarket worker image: `docker build -t remarket .` (used by docker-compose.yml)
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    REMARKET_DATA_DIR=/var/lib/remarket REMARKET_WEB_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system --uid 10001 remarket \
    && mkdir -p /var/lib/remarket && chown remarket /var/lib/remarket
USER remarket
VOLUME ["/var/lib/remarket"]
EXPOSE 6066
ENTRYPOINT ["remarket"]
CMD ["worker"]
