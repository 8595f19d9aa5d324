# turngym env server: `turngym serve` in a container (built and run by `turngym serve --docker`,
# or by hand: docker build -t turngym-server . && docker run -p 8000:8000 turngym-server).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/turngym
# Only what the package needs: pyproject.toml, the README it names, the sources (see
# .dockerignore); the serve extra brings fastapi, uvicorn, websockets and pydantic.
COPY pyproject.toml README.md ./
COPY turngym ./turngym
RUN pip install ".[serve]" && useradd --create-home --uid 10001 turngym

# Envs run unprivileged: a game bug must not be able to touch the image.
USER turngym
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"

# Listen on every interface of the container; publish the port with -p HOST_PORT:8000.
CMD ["turngym", "serve", "turngym/Sokoban-v0", "--host", "0.0.0.0", "--port", "8000"]
