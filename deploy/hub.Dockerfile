# The hub for docker-compose.yml: the official image plus JupyterLab, so the hub can start
# users' servers (jupyterhub-singleuser) in its own container.
FROM quay.io/jupyterhub/jupyterhub:5
RUN python3 -m pip install --no-cache-dir jupyterlab
