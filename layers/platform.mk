# The platform a layer is built for, included by each layer's Makefile after it sets PYTHON,
# HERE (its folder) and LAYER (its logical ID in template.yaml).
#
# The architecture is the template's: the layer's Metadata BuildArchitecture. `sam build` does not
# pass it to a makefile build (aws-lambda-builders' custom_make workflow sets ARTIFACTS_DIR only),
# so layers/layer_build.py reads it from the template. Only a command-line
# LAMBDA_ARCHITECTURE=arm64|x86_64 overrides it (tests/test_package_size.py builds a copy for this
# machine that way, to import the layers here); an environment variable of that name does not.
#
# Wheels are fetched for Lambda's platform, whatever the build machine is: CPython 3.12 on
# Amazon Linux 2023 (glibc 2.34), so manylinux2014 wheels, and the manylinux_2_28/2_34 wheels that
# some packages ship only.

LAYER_BUILD := $(HERE)../layer_build.py
TEMPLATE := $(HERE)../../template.yaml
ifneq ($(origin LAMBDA_ARCHITECTURE),command line)
LAMBDA_ARCHITECTURE := $(shell $(PYTHON) "$(LAYER_BUILD)" architecture "$(TEMPLATE)" $(LAYER))
endif
MACHINE := $(or $(if $(filter arm64,$(LAMBDA_ARCHITECTURE)),aarch64),$(if $(filter x86_64,$(LAMBDA_ARCHITECTURE)),x86_64),\
	$(error $(LAYER): no architecture (LAMBDA_ARCHITECTURE=$(LAMBDA_ARCHITECTURE)): see layers/platform.mk))
HOST_MACHINE := $(shell uname -m)
manylinux = $(addprefix --platform ,manylinux2014_$(1) manylinux_2_28_$(1) manylinux_2_34_$(1))
# pip install $(PIP_TARGET_FLAGS) $(FOR_LAMBDA): the layer's wheels. FOR_HOST: the same versions
# (and hashes) for this machine, for a build step that imports the layer here.
FOR_LAMBDA := $(call manylinux,$(MACHINE))
FOR_HOST := $(call manylinux,$(HOST_MACHINE))
# Python 3.12 on Linux can import a layer built for its own machine (FOR_HOST when it differs).
CAN_IMPORT := $(filter 3.12-Linux,$(shell $(PYTHON) -c 'import platform, sys; print("%d.%d-%s" % (*sys.version_info[:2], platform.system()))'))
# Strip the static symbol tables of the wheels' shared libraries (several MB; the dynamic symbols
# Python loads stay): GNU strip for this machine's own architecture, else a cross strip or
# llvm-strip, which read any ELF; no stripping where there is none (macOS).
STRIP ?= $(firstword \
	$(if $(filter $(MACHINE),$(HOST_MACHINE)),$(shell strip --version 2>/dev/null | grep -q GNU && echo strip)) \
	$(shell for tool in $(MACHINE)-linux-gnu-strip llvm-strip; do command -v $$tool; done 2>/dev/null))
