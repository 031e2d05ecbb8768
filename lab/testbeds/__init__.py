"""CPU testbeds (importable without ComfyUI; scikit-learn needed only for the digits data).

gaussian   closed-form Gaussian denoiser and ODE endpoint (solver order tests)
digits     the scikit-learn digits, split 80/20 and scaled to [-1, 1]
exact      the exact (memorising) empirical denoiser as a k-diffusion model
models     the bundled EDM MLP denoiser and digits classifier (safetensors + JSON sidecars)
train      reproducible training of those two: python -m schedule_lab.lab.testbeds.train
metrics    NFE counter, RMSE, FD_cls, SWD, mode agreement, nearest distances
reference  cached many-step Heun endpoints on Karras sigmas
"""
